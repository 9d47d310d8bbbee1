"""Durations as people write them: ``5``, ``1.5``, ``300ms``, ``5m``, ``30 minutes``, ``2 hours``.

A bare number means seconds. The result is always a float number of seconds.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ``ValueError`` with a readable reason."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '5s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"cannot read {value!r} as a duration (examples: 5, 300ms, 5m, 2 hours)"
            )
        number, unit = match.groups()
        factor = _UNITS.get(unit.lower() if unit else "s")
        if factor is None:
            known = ", ".join(sorted({"ms", "s", "m", "min", "h", "hours", "d", "days"}))
            raise ValueError(f"unknown time unit {unit!r} in {value!r} (use one of {known})")
        seconds = float(number) * factor
    else:
        raise ValueError("a duration must be a number of seconds or a string like '5s'")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite, non-negative number of seconds")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A field type: accepts ``5``, ``"5s"``, ``"2 hours"``; holds seconds as a float."""
