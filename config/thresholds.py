"""Thresholds and conditions as the rollout plans write them.

``"< 1%"``, ``"< 2000ms"``, ``"> 4.0/5.0"``, ``"<= 0.5"`` are thresholds; a condition names
the metric too: ``"error_rate > 5%"``, ``"latency_p95 > 3000ms"``. Every value is kept in the
unit its metric is measured in: rates as fractions (``1%`` → 0.01), latencies in milliseconds
(``2 s`` → 2000), satisfaction on the 1–5 scale (``4.0/5.0`` → 4.0, ``0.8/1`` → 4.0).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator, PlainSerializer

Metric = Literal[
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "ttfb_p50",
    "ttfb_p95",
    "ttfb_p99",
    "hallucination_rate",
    "user_satisfaction",
]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]
_KIND = {
    "error_rate": "rate",
    "hallucination_rate": "rate",
    "user_satisfaction": "score",
}

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_THRESHOLD = re.compile(r"^\s*(<=|>=|<|>)\s*(\d+(?:\.\d+)?)\s*(%|ms|s|/\s*\d+(?:\.\d+)?)?\s*$")
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(.+)$")


@dataclass(frozen=True)
class Threshold:
    op: str
    value: float
    text: str

    def holds(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return self.text


def parse_threshold(text: str, metric: str) -> Threshold:
    """Parse ``text`` for ``metric``; ``ValueError`` with the reason when it does not fit."""
    match = _THRESHOLD.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a threshold (examples: '< 1%', '< 2000ms', '> 4.0/5.0')")
    op, number, unit = match.groups()
    value = float(number)
    kind = _KIND.get(metric, "latency")
    unit = (unit or "").replace(" ", "")
    if kind == "rate":
        if unit != "%":
            # "error_rate < 1" read as a fraction means 100 % and always passes: refuse it.
            raise ValueError(
                f"{text!r}: {metric} is a rate: write it as a percentage, e.g. '{op} {number}%'"
                + (f" (or '{op} {value * 100:g}%' if {number} was a fraction)" if value < 1 else "")
            )
        value /= 100
        if not 0 <= value <= 1:
            raise ValueError(f"{text!r}: a rate lies between 0% and 100%")
    elif kind == "score":
        if unit.startswith("/"):
            value = value / float(unit[1:]) * 5
        elif unit:
            raise ValueError(f"{text!r}: {metric} is a score on a 1–5 scale, e.g. '> 4.0/5.0'")
        if not 0 <= value <= 5:
            raise ValueError(f"{text!r}: a satisfaction score lies between 0 and 5")
    else:
        if unit == "s":
            value *= 1000
        elif unit not in ("", "ms"):
            raise ValueError(f"{text!r}: {metric} is a latency: write it in ms or s")
    if not math.isfinite(value):
        raise ValueError(f"{text!r}: not a finite number")
    return Threshold(op, value, text.strip())


def with_unit(text: str, metric: str) -> str:
    """``< 0.01`` → ``< 1%`` for a rate (the fraction plans could once write); else ``text``."""
    match = _THRESHOLD.match(text) if isinstance(text, str) else None
    if match is None or _KIND.get(metric) != "rate" or match.group(3):
        return text
    op, number, _ = match.groups()
    return f"{op} {float(number) * 100:g}%"


def with_unit_condition(text: str) -> str:
    match = _CONDITION.match(text) if isinstance(text, str) else None
    if match is None:
        return text
    return f"{match.group(1)} {with_unit(match.group(2), match.group(1))}"


@dataclass(frozen=True)
class Condition:
    metric: str
    threshold: Threshold

    def __str__(self) -> str:
        return f"{self.metric} {self.threshold}"


def parse_condition(text: object) -> Condition:
    if isinstance(text, Condition):
        return text
    if not isinstance(text, str):
        raise ValueError("a condition is a string like 'error_rate > 5%'")
    match = _CONDITION.match(text)
    if match is None or match.group(1) not in METRICS:
        known = ", ".join(METRICS)
        raise ValueError(f"{text!r}: a condition starts with a metric ({known})")
    return Condition(match.group(1), parse_threshold(match.group(2), match.group(1)))


ConditionField = Annotated[
    Condition, BeforeValidator(parse_condition), PlainSerializer(str, return_type=str)
]
