"""The ground every config model stands on: the frozen base model, names, header names,
percentages, the routing hash's bucket count, the built-in segment and attribute, and a
validation error at a location. ``config.flag_schedule``, ``config.flags`` and
``config.schema`` build on it, in that order."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

HASH_BUCKETS = 10_000
"""Hash buckets per route: one bucket is 0.01 % of the users."""

_NAME = re.compile(r"^[a-z0-9]([a-z0-9_.-]{0,62})$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9a-zA-Z-]+$")


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "must be 1-63 characters of lower-case letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]


def check_header_name(value: str) -> str:
    if not HEADER_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value.lower()


HeaderName = Annotated[str, AfterValidator(check_header_name)]

ALL_USERS = "all_users"
"""The segment every user belongs to; it cannot be redefined."""
USER_ID = "user_id"
"""The attribute holding the route's sticky key; it has no header of its own."""


def invalid(loc: tuple[str | int, ...], message: str, value: object) -> ValidationError:
    """A validation error at ``loc`` (relative to the model being validated)."""
    error = PydanticCustomError("invalid", "{reason}", {"reason": message})
    return ValidationError.from_exception_data(
        "flags", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def _check_percentage(value: float) -> float:
    if value != value or value < 0 or value > 100:
        raise ValueError("a percentage is between 0 and 100")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise ValueError("a percentage has at most two decimals (0.01 % steps)")
    return value


Percentage = Annotated[float, AfterValidator(_check_percentage)]
