"""Thresholds and conditions as the rollout plans write them.

``"< 1%"``, ``"< 2000ms"``, ``"> 4.0/5.0"``, ``"<= 0.5"`` are thresholds; a condition names
the metric too: ``"error_rate > 5%"``, ``"latency_p95 > 3000ms"``. Every value is kept in the
unit its metric is measured in: rates as fractions (``1%`` → 0.01), latencies in milliseconds
(``2 s`` → 2000), satisfaction on the 1–5 scale (``4.0/5.0`` → 4.0, ``0.8/1`` → 4.0), tokens
per request as a count (``< 900``, ``< 900 tokens``), cost per request in the plan's currency
(``< $0.002``), the shadow's win rate as a rate (``> 45%``). Tokens and cost may also be
judged against the baseline: ``< baseline + 10%``, ``> baseline + 30%``, ``< baseline``
(``relative``; ``value`` is then the ratio, 1.1).
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
    "tokens_per_request",
    "cost_per_request",
    "shadow_win_rate",
]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]
_KIND = {
    "error_rate": "rate",
    "hallucination_rate": "rate",
    "user_satisfaction": "score",
    "tokens_per_request": "tokens",
    "cost_per_request": "cost",
    "shadow_win_rate": "rate",
}
USAGE_METRICS = frozenset({"tokens_per_request", "cost_per_request"})
"""Means of what the upstream's ``usage`` reported, judged by ``control.analysis.usage``."""
SHADOW_METRICS = frozenset({"shadow_win_rate"})
"""Measured on a track's shadow copies (``config.shadow``), never on its live traffic:
``shadow_win_rate``, the share of judged pairs the shadow won, ties counting half."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_THRESHOLD = re.compile(r"^\s*(<=|>=|<|>)\s*(\d+(?:\.\d+)?)\s*(%|ms|s|/\s*\d+(?:\.\d+)?)?\s*$")
_USAGE = re.compile(r"^\s*(<=|>=|<|>)\s*(\$)?\s*(\d+(?:\.\d+)?)\s*(tokens)?\s*$")
_RELATIVE = re.compile(r"^\s*(<=|>=|<|>)\s*baseline\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*%)?\s*$")
_CONDITION = re.compile(r"^\s*([a-z_0-9]+)\s*(.+)$")


@dataclass(frozen=True)
class Threshold:
    op: str
    value: float
    text: str
    relative: bool = False
    """Judged against the baseline: ``value`` is the ratio (``baseline + 10%`` → 1.1)."""

    def holds(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    def __str__(self) -> str:
        return self.text


def parse_threshold(text: str, metric: str) -> Threshold:
    """Parse ``text`` for ``metric``; ``ValueError`` with the reason when it does not fit."""
    if metric in USAGE_METRICS:
        return _usage_threshold(text, metric)
    if _RELATIVE.match(text):
        raise ValueError(
            f"{text!r}: only tokens_per_request and cost_per_request are judged against the "
            "baseline in a threshold (the error rate and latency are compared with it anyway)"
        )
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


def _usage_threshold(text: str, metric: str) -> Threshold:
    relative = _RELATIVE.match(text)
    if relative is not None:
        op, sign, number = relative.groups()
        margin = float(number or 0) / 100 * (-1 if sign == "-" else 1)
        if not -1 < margin <= 10:
            raise ValueError(f"{text!r}: a margin lies between -100% and +1000%")
        return Threshold(op, 1 + margin, text.strip(), relative=True)
    match = _USAGE.match(text)
    if match is None:
        example = "'< 900'" if metric == "tokens_per_request" else "'< $0.002'"
        raise ValueError(
            f"{text!r} is not a threshold for {metric} (examples: {example}, '< baseline + 10%')"
        )
    op, dollar, number, tokens = match.groups()
    if metric == "tokens_per_request" and dollar:
        raise ValueError(f"{text!r}: tokens_per_request counts tokens, not money")
    if metric == "cost_per_request" and tokens:
        raise ValueError(f"{text!r}: cost_per_request is money, e.g. '< $0.002'")
    value = float(number)
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
