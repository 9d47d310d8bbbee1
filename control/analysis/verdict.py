"""Threshold checks of one track's window: pure, table-tested, with the figures kept.

``assess(metric, threshold, window, minimum)`` reads the metric from the merged counts of a
window and says ``pass`` or ``fail``, or ``inconclusive`` when the window holds too few
requests (or ratings) to judge, or ``error`` when there is no window at all (the metrics
store is unreachable): neither of the last two is ever a failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from config.metrics import TrackWindow, percentile
from config.thresholds import Threshold


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class Assessment:
    metric: str
    verdict: Verdict
    value: float | None
    threshold: str
    sample: int
    reason: str


def measure(metric: str, window: TrackWindow) -> tuple[float | None, int]:
    """The metric's value in a window and the sample it rests on."""
    if metric == "error_rate":
        errors = sum(window.errors.values())
        return (errors / window.requests if window.requests else None), window.requests
    if metric.startswith(("latency_", "ttfb_")):
        kind, _, name = metric.partition("_")
        counts = window.latency if kind == "latency" else window.ttfb
        q = {"p50": 0.5, "p95": 0.95, "p99": 0.99}[name]
        return percentile(counts, q), sum(counts)
    if metric == "hallucination_rate":
        yes = window.feedback.get("hallucination_yes", 0)
        judged = yes + window.feedback.get("hallucination_no", 0)
        return (yes / judged if judged else None), judged
    if metric == "user_satisfaction":
        rated = window.feedback.get("rating_n", 0)
        return (window.feedback.get("rating_sum", 0) / rated if rated else None), rated
    raise ValueError(f"unknown metric {metric!r}")


def _measured(
    metric: str, against: str, window: TrackWindow | None, minimum: int
) -> Assessment | tuple[float, int]:
    """The value and sample, or the ERROR / INCONCLUSIVE assessment that stops the judgement."""
    if window is None:
        return Assessment(
            metric, Verdict.ERROR, None, against, 0, "no metrics: the store did not answer"
        )
    value, sample = measure(metric, window)
    if value is None or sample < minimum:
        return Assessment(
            metric,
            Verdict.INCONCLUSIVE,
            value,
            against,
            sample,
            f"{metric}: {sample} samples, {minimum} needed",
        )
    return value, sample


def assess(
    metric: str, threshold: Threshold, window: TrackWindow | None, minimum: int
) -> Assessment:
    """``threshold`` says what a good value is (e.g. ``< 1%`` for the error rate)."""
    measured = _measured(metric, str(threshold), window, minimum)
    if isinstance(measured, Assessment):
        return measured
    value, sample = measured
    ok = threshold.holds(value)
    verdict = Verdict.PASS if ok else Verdict.FAIL
    reason = f"{metric} = {value:g} {'meets' if ok else 'misses'} {threshold}"
    return Assessment(metric, verdict, value, str(threshold), sample, reason)


def breached(
    metric: str, condition: Threshold, window: TrackWindow | None, minimum: int
) -> Assessment:
    """A ``rollback_if`` condition (e.g. ``> 5%``): FAIL when it holds, PASS when it does not."""
    measured = _measured(metric, str(condition), window, minimum)
    if isinstance(measured, Assessment):
        return measured
    value, sample = measured
    hit = condition.holds(value)
    verdict = Verdict.FAIL if hit else Verdict.PASS
    reason = f"{metric} = {value:g}{' ' if hit else ' not '}{condition}: {'roll back' if hit else 'fine'}"
    return Assessment(metric, verdict, value, str(condition), sample, reason)


def normal_quantile_one_sided(confidence: float) -> float:
    """z with P(Z < z) = confidence, by bisection on ``erfc`` (cheap enough, called rarely)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < confidence:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def min_sample(
    metric: str, threshold: Threshold, confidence: float, min_effect: float, floor: int
) -> int:
    """The sample a threshold check needs before it may say pass or fail.

    Enough that a one-sided test at ``confidence`` tells the threshold from a value off by the
    smallest effect worth catching (``min_effect``, relative to the threshold): for a rate
    ``t``, ``z² t(1-t) / (min_effect·t)²``; for a latency quantile ``q``, the samples that pin
    the quantile's rank to within ``min_effect·(1-q)``; for the satisfaction score (1–5,
    spread about 1), ``(z / (min_effect·t))²``. Never below ``floor``, never above 100,000.
    """
    z = normal_quantile_one_sided(confidence)
    if metric in ("error_rate", "hallucination_rate"):
        t = min(max(threshold.value, 1e-4), 0.5)
        n = z * z * t * (1 - t) / (min_effect * t) ** 2
    elif metric == "user_satisfaction":
        n = (z / (min_effect * max(threshold.value, 0.1))) ** 2
    else:
        q = {"p50": 0.5, "p95": 0.95, "p99": 0.99}[metric.rpartition("_")[2]]
        n = z * z * q * (1 - q) / (min_effect * (1 - q)) ** 2
    return int(min(max(math.ceil(n), floor), 100_000))
