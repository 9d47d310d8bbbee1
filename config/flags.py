"""Feature flags: who gets a flag's track, in which order the rules apply, and when it changes.

A flag lives in the routing document (``feature_flags``, evaluated in the order listed) and
releases one track of one route. For each request, each enabled flag of its route in turn:

1. ``override.disabled_for`` (exact user ids) passes this flag by; ``override.enabled_for``
   releases the user whatever else the flag says. Deny before allow.
2. The audience: each segment named in ``target_groups`` is one condition set, the flag's own
   ``conditions`` one more; the user belongs if any set holds, and a set holds if every one
   of its conditions does. ``all_users`` is the segment of everyone. No set: nobody (a flag
   of overrides alone).
3. ``rollout_percentage`` of the audience: ``xxh64(salt ":" user) mod 10000 < percentage×100``
   with the salt ``flag:<name>`` unless given, so raising the percentage only adds users and
   two flags with the same percentage pick different users.

The first flag that releases the user decides; otherwise the route's weighted split does.

Attributes are request headers: ``attributes`` maps a name to a header, by default ``x-`` and
the name with ``_`` as ``-`` (``user_segment`` ← ``x-user-segment``). ``user_id`` is the
route's sticky key. A missing or empty attribute satisfies no condition, ``not_in``
included; a value that does not parse (a number for ``gt``, a version for ``semver_gt``)
satisfies none either.

Pure: the proxy compiles these models into its table (``proxy.table``); ``explain`` here is
the readable reference that the compiled form must agree with.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from config.base import (
    ALL_USERS,
    USER_ID,
    Model,
    Name,
    Percentage,
    invalid,
)
from config.flag_schedule import Schedule
from config.stickiness import bucket, salt_prefix

SemVer = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]
Compare = Callable[[Any, Any], bool]

SET_OPERATORS = frozenset({"in", "not_in", "prefix"})
"""Operators that take ``values``, a non-empty list of strings."""
TEXT_OPERATORS = frozenset({"equals", "not_equals"})
NUMBER_OPERATORS: dict[str, Compare] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
SEMVER_OPERATORS: dict[str, Compare] = {
    "semver_eq": operator.eq,
    "semver_gt": operator.gt,
    "semver_gte": operator.ge,
    "semver_lt": operator.lt,
    "semver_lte": operator.le,
}
OPERATORS = (
    "in",
    "not_in",
    "equals",
    "not_equals",
    "prefix",
    *NUMBER_OPERATORS,
    *SEMVER_OPERATORS,
)

_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SEMVER = re.compile(
    r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def parse_number(text: str) -> float | None:
    """A finite decimal number, or None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_semver(text: str) -> SemVer | None:
    """``_parse_semver`` with its cache kept for values of a sane length: a header value is
    the client's to choose, and large unique ones must not fill the cache."""
    return _parse_semver(text) if len(text) <= 64 else None


@lru_cache(maxsize=4096)
def _parse_semver(text: str) -> SemVer | None:
    """A sort key with semver 2.0 precedence (``v`` prefix allowed, build ignored), or None.

    Cached: a fleet sends few distinct versions, and the regex costs more than the lookup.
    """
    found = _SEMVER.match(text)
    if found is None:
        return None
    major, minor, patch, pre = found.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


def _check_attribute(value: str) -> str:
    if not _ATTRIBUTE.match(value):
        raise ValueError(
            f"{value!r}: an attribute name is lower-case letters, digits and '_', "
            "starting with a letter"
        )
    return value


AttributeName = Annotated[str, AfterValidator(_check_attribute)]


def default_header(attribute: str) -> str:
    """The header an attribute is read from when ``attributes`` does not name one."""
    return "x-" + attribute.replace("_", "-")


UserId = Annotated[str, Field(min_length=1, max_length=256)]


class Condition(Model):
    """One test of one attribute. ``{type: region, values: [jp]}`` (the seed's form) means
    ``{attribute: region, operator: in, values: [jp]}``."""

    attribute: AttributeName = Field(validation_alias=AliasChoices("attribute", "type"))
    operator: str = "in"
    values: list[str] | None = None
    value: str | float | None = None

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        if value not in OPERATORS:
            raise ValueError(f"unknown operator {value!r}: use one of {', '.join(OPERATORS)}")
        return value

    @field_validator("value", mode="before")
    @classmethod
    def _not_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a number or a string, not true/false")
        return value

    @model_validator(mode="after")
    def _operand_fits(self) -> Condition:
        op = self.operator
        if op in SET_OPERATORS:
            if self.value is not None:
                raise invalid(("value",), f"{op} takes 'values' (a list), not 'value'", self.value)
            if not self.values:
                raise invalid(("values",), f"empty audience: {op} needs at least one value", [])
            if op == "prefix" and "" in self.values:
                raise invalid(("values",), "an empty prefix would match everyone", self.values)
            return self
        if self.values is not None:
            raise invalid(("values",), f"{op} takes one 'value', not 'values'", self.values)
        if op in TEXT_OPERATORS and not isinstance(self.value, str):
            raise invalid(("value",), f"{op} compares text: give a string value", self.value)
        if op in NUMBER_OPERATORS and not (
            isinstance(self.value, float) and math.isfinite(self.value)
        ):
            raise invalid(("value",), f"{op} compares numbers: give a number", self.value)
        if op in SEMVER_OPERATORS and (
            not isinstance(self.value, str) or parse_semver(self.value) is None
        ):
            raise invalid(
                ("value",), f"{op} needs a version such as '2.3.0' or 'v2.3.0-beta.1'", self.value
            )
        return self

    def key(self) -> tuple[str, str, object]:
        """Equal for conditions that always agree: the compiled form evaluates those once."""
        if self.values is not None:
            return (self.attribute, self.operator, frozenset(self.values))
        return (self.attribute, self.operator, self.value)

    def holds(self, value: str | None) -> bool:
        """Whether this condition holds for an attribute's value (None: not sent)."""
        if not value:
            return False
        op = self.operator
        if op == "in" or op == "not_in":
            assert self.values is not None
            return (value in self.values) == (op == "in")
        if op == "prefix":
            assert self.values is not None
            return value.startswith(tuple(self.values))
        if op in TEXT_OPERATORS:
            return (value == self.value) == (op == "equals")
        if op in NUMBER_OPERATORS:
            number = parse_number(value)
            return number is not None and NUMBER_OPERATORS[op](number, self.value)
        version = parse_semver(value)
        assert isinstance(self.value, str)
        return version is not None and SEMVER_OPERATORS[op](version, parse_semver(self.value))


class Segment(Model):
    """A named condition set (all must hold), defined once and named by flags' target groups."""

    description: str = ""
    conditions: list[Condition]

    @field_validator("conditions")
    @classmethod
    def _not_empty(cls, value: list[Condition]) -> list[Condition]:
        if not value:
            raise ValueError("empty audience: a segment needs at least one condition")
        return value


class UserOverrides(Model):
    enabled_for: list[UserId] = Field(default_factory=list)
    disabled_for: list[UserId] = Field(default_factory=list)


class Flag(Model):
    """Releases ``track`` of ``route`` to an audience; see the module's docstring."""

    route: Name
    track: Name
    enabled: bool = True
    rollout_percentage: Percentage = 100.0
    target_groups: list[Name] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    override: UserOverrides = UserOverrides()
    salt: str | None = Field(default=None, min_length=1, max_length=128)
    description: str = ""
    gradual_rollout: Schedule | None = None

    @model_validator(mode="after")
    def _has_audience(self) -> Flag:
        if not self.target_groups and not self.conditions and not self.override.enabled_for:
            raise invalid(
                ("target_groups",),
                "empty audience: name segments in target_groups (all_users for everyone), "
                "give conditions, or list users in override.enabled_for",
                [],
            )
        return self

    def condition_sets(self, segments: Mapping[str, Segment]) -> list[tuple[str, list[Condition]]]:
        """(label, conditions) of each set, in order: segments named, then ``conditions``."""
        sets = [
            (name, [] if name == ALL_USERS else segments[name].conditions)
            for name in self.target_groups
        ]
        if self.conditions:
            sets.append(("conditions", self.conditions))
        return sets


def flag_salt(name: str, flag: Flag) -> str:
    return flag.salt if flag.salt is not None else f"flag:{name}"


def bucket_of(salt: str, key: str) -> int:
    """``xxh64(salt ":" key) mod 10000`` (``config.stickiness``, as the proxy hashes)."""
    return bucket(salt_prefix(salt), key)


def threshold(flag: Flag) -> int:
    """Buckets ``[0, threshold)`` of the flag's hash are released."""
    return round(flag.rollout_percentage * 100)


Outcome = Literal["disabled", "denied", "allowed", "not_in_audience", "held_out", "released"]
Rule = Literal["enabled_for", "rollout", "weights", "random"]


class FlagStep(Model):
    """What one flag made of the request."""

    flag: str
    outcome: Outcome
    reason: str
    bucket: int | None = None


class Explanation(Model):
    """Which track a request gets and why: the answer to "why did this user see v2?"."""

    route: str
    user_id: str | None
    attributes: dict[str, str]
    track: str | None
    """None: the request has no sticky key and the matched rule draws at random."""
    flag: str | None
    """The flag that released the request, if one did."""
    rule: Rule
    reason: str
    flags: list[FlagStep]
    bucket: int | None = None
    """The deciding bucket: the flag's for ``rollout``, the route's for ``weights``."""


def check_references(
    tracks: Mapping[str, set[str]],
    segments: Mapping[str, Segment],
    flags: Mapping[str, Flag],
    attributes: Mapping[str, str],
) -> None:
    """Cross-references of the document; raises a ``ValidationError`` naming each field."""
    errors: list[InitErrorDetails] = []

    def fail(loc: tuple[str | int, ...], message: str, value: object) -> None:
        error = PydanticCustomError("invalid", "{reason}", {"reason": message})
        errors.append(InitErrorDetails(type=error, loc=loc, input=value))

    if ALL_USERS in segments:
        fail(("segments", ALL_USERS), "all_users is built in: it is everyone", ALL_USERS)
    if USER_ID in attributes:
        fail(("attributes", USER_ID), "user_id is the route's sticky key, not a header", USER_ID)
    known = tracks  # route name → its track names
    groups = set(segments) | {ALL_USERS}
    for name, flag in flags.items():
        at = ("feature_flags", name)
        if flag.route not in known:
            fail((*at, "route"), f"no route named {flag.route!r}", flag.route)
        elif flag.track not in known[flag.route]:
            fail((*at, "track"), f"route {flag.route!r} has no track {flag.track!r}", flag.track)
        for i, group in enumerate(flag.target_groups):
            if group not in groups:
                fail((*at, "target_groups", i), f"unknown segment {group!r}", group)
        steps = flag.gradual_rollout.schedule if flag.gradual_rollout else []
        for i, s in enumerate(steps):
            if s.target is not None and s.target not in groups:
                where = (*at, "gradual_rollout", "schedule", i, "target")
                fail(where, f"unknown segment {s.target!r}", s.target)
    if errors:
        raise ValidationError.from_exception_data("RoutingDocument", errors)
