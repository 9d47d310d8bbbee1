"""Threshold checks of one track's window, judged on evidence: pure, table-tested.

``assess(metric, threshold, window, confidence)`` says ``pass`` when a confidence bound at
``confidence`` lies on the good side of the threshold, ``fail`` when the opposite bound lies
on the bad side, and ``inconclusive`` in between (with how many more samples it would take
at the observed rate); ``error`` when there is no window at all (the metrics store is
unreachable). No traffic is never a pass and never a fail.

The bounds (``control.analysis.bounds``) stay valid under any number of looks, so the
runner may judge every interval without a minimum sample: a clean candidate passes
``error_rate < 1%`` at 95 % after 364 requests without errors (the rule of three says
298 for a single look), and a broken one fails as soon as the evidence is there.

- Rates (``error_rate``, ``hallucination_rate``): bounds on the event rate.
- Latency quantiles (``latency_p95 < 2000ms``): ``p95 < T`` holds when fewer than 5 % of
  requests are slower than ``T``, so the share above ``T`` is judged as a rate, counting the
  histogram bucket that straddles ``T`` against the verdict being drawn (as slow for a pass,
  as fast for a fail). The bound reported is the bucket edge of the bound's rank.
- ``user_satisfaction`` (1–5): bounds on the mean rating from its sum and sum of squares.
- ``shadow_win_rate``: the share of judged shadow pairs the shadow won, a tie counting half,
  judged as the mean of scores in [0, 1] (win 1, tie 0.5, loss 0) with the same bounds:
  ties make it no proportion, and its spread is smaller than a proportion's.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from enum import StrEnum

from config.metrics import BUCKET_BOUNDS_MS, TrackWindow, percentile
from config.thresholds import Threshold
from control.analysis import bounds

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
RATING_RANGE = (1.0, 5.0)
WIN_RANGE = (0.0, 1.0)


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
    """Point estimate in the metric's unit: rates as fractions, ms, 1–5 score."""
    threshold: str
    sample: int
    reason: str
    """One readable clause with every figure's unit; never starts with the metric's name."""
    bound: float | None = None
    """The confidence bound that decided (or the one that would), in the unit of ``value``."""
    needed: int | None = None
    """INCONCLUSIVE only: more samples to decide if the observed rate held."""
    unit: str = ""
    """``%`` (``value`` is a fraction: show it ×100), ``ms``, ``/5`` or empty."""


def measure(metric: str, window: TrackWindow) -> tuple[float | None, int]:
    """The metric's value in a window and the sample it rests on."""
    if metric == "error_rate":
        errors = sum(window.errors.values())
        return (errors / window.requests if window.requests else None), window.requests
    if metric.startswith(("latency_", "ttfb_")):
        counts = _histogram(metric, window)
        return percentile(counts, QUANTILES[metric.partition("_")[2]]), sum(counts)
    if metric == "hallucination_rate":
        yes = window.feedback.get("hallucination_yes", 0)
        judged = yes + window.feedback.get("hallucination_no", 0)
        return (yes / judged if judged else None), judged
    if metric == "user_satisfaction":
        rated = window.feedback.get("rating_n", 0)
        return (window.feedback.get("rating_sum", 0) / rated if rated else None), rated
    if metric == "shadow_win_rate":
        won, _, judged = _wins(window)
        return (won / judged if judged else None), judged
    raise ValueError(f"unknown metric {metric!r}")


@dataclass(frozen=True)
class _Judgement:
    """Where the evidence stands against a threshold value ``t``, whatever its operator."""

    above: bool
    """The metric is shown above ``t``."""
    below: bool
    """The metric is shown below ``t``."""
    bound: float | None
    """The upper bound when the metric is shown, or looks, below ``t``; else the lower one."""
    leans_below: bool
    """The metric is shown below ``t``, or else its point estimate is below ``t``."""
    needed: int | None


def assess(
    metric: str,
    threshold: Threshold,
    window: TrackWindow | None,
    confidence: float,
    *,
    design_effect: float = 1.0,
) -> Assessment:
    """Does the window show ``metric`` meets ``threshold`` (e.g. ``< 1%``) at ``confidence``?

    PASS when the bound on the threshold's good side is shown, FAIL when the bound on its
    bad side is, INCONCLUSIVE otherwise (and with no samples), ERROR without a window. Each
    of PASS and FAIL is wrong with probability at most ``1 - confidence`` over all looks.
    ``design_effect`` (>= 1) discounts clustered samples (see ``bounds``).
    """
    early = _stop(metric, str(threshold), window, confidence)
    if isinstance(early, Assessment):
        return early
    value, sample, window = early
    j = _judge(metric, threshold.value, window, 1 - confidence, design_effect)
    wants_below = threshold.op in ("<", "<=")
    good, bad = (j.below, j.above) if wants_below else (j.above, j.below)
    unit = _unit(metric)
    t = _fmt(threshold.value, unit)
    good_word, bad_word = ("below", "above") if wants_below else ("above", "below")
    if good or bad:
        verdict = Verdict.PASS if good else Verdict.FAIL
        clause = f"{good_word if good else bad_word} {t}"
        needed = None
    else:
        verdict = Verdict.INCONCLUSIVE
        clause = f"not yet {good_word if wants_below == j.leans_below else bad_word} {t}"
        needed = j.needed
        if needed is not None:
            clause += f" (about {needed:,} more {_noun(metric)} at this rate)"
    reason = _figures(metric, value, j, sample, unit) + ", " + clause
    return Assessment(metric, verdict, value, str(threshold), sample, reason, j.bound, needed, unit)


def breached(
    metric: str,
    condition: Threshold,
    window: TrackWindow | None,
    confidence: float,
    *,
    design_effect: float = 1.0,
) -> Assessment:
    """A ``rollback_if`` condition (e.g. ``> 5%``): FAIL (roll back) when it is shown to hold.

    PASS otherwise: a condition that is not proven never rolls back or holds a phase (the
    reason says whether it was shown not to hold or is merely unproven). ERROR without a
    window, INCONCLUSIVE with no samples.
    """
    early = _stop(metric, str(condition), window, confidence)
    if isinstance(early, Assessment):
        return early
    value, sample, window = early
    j = _judge(metric, condition.value, window, 1 - confidence, design_effect)
    holds_above = condition.op in (">", ">=")
    hit, cleared = (j.above, j.below) if holds_above else (j.below, j.above)
    unit = _unit(metric)
    t = _fmt(condition.value, unit)
    side, other = ("above", "below") if holds_above else ("below", "above")
    if hit:
        verdict, clause = Verdict.FAIL, f"{side} {t}: roll back"
    elif cleared:
        verdict, clause = Verdict.PASS, f"{other} {t}"
    else:
        verdict, clause = Verdict.PASS, f"not shown {side} {t}"
    reason = _figures(metric, value, j, sample, unit) + ", " + clause
    return Assessment(metric, verdict, value, str(condition), sample, reason, j.bound, None, unit)


def _stop(
    metric: str, against: str, window: TrackWindow | None, confidence: float
) -> Assessment | tuple[float, int, TrackWindow]:
    """The value, sample and window, or the ERROR / INCONCLUSIVE assessment that stops here."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence!r} must lie strictly between 0 and 1")
    unit = _unit(metric)
    if window is None:
        return Assessment(
            metric,
            Verdict.ERROR,
            None,
            against,
            0,
            "no metrics: the store did not answer",
            unit=unit,
        )
    value, sample = measure(metric, window)
    if value is None or sample == 0:
        return Assessment(
            metric, Verdict.INCONCLUSIVE, None, against, 0, f"no {_noun(metric)} yet", unit=unit
        )
    return value, sample, window


def _judge(
    metric: str, t: float, window: TrackWindow, alpha: float, design_effect: float
) -> _Judgement:
    if metric in ("error_rate", "hallucination_rate"):
        k, n = _events(metric, window)
        return _rate(k, k, n, t, alpha, design_effect)
    if metric == "user_satisfaction":
        fb = window.feedback
        ratings = fb.get("rating_sum", 0), fb.get("rating_sq", 0), fb.get("rating_n", 0)
        return _mean(*ratings, RATING_RANGE, t, alpha, design_effect)
    if metric == "shadow_win_rate":
        return _mean(*_wins(window), WIN_RANGE, t, alpha, design_effect)
    return _quantile(
        _histogram(metric, window), QUANTILES[metric.partition("_")[2]], t, alpha, design_effect
    )


def _rate(
    k_up: int, k_low: int, n: int, t: float, alpha: float, d: float, *, with_bound: bool = True
) -> _Judgement:
    """A rate against ``t``; ``k_up`` events count towards "below", ``k_low`` towards "above"
    (they differ only for a latency quantile's straddling bucket)."""
    below = bounds.shows_below(k_up, n, t, alpha, d)
    above = not below and bounds.shows_above(k_low, n, t, alpha, d)
    leans_below = k_up / n < t
    if below or above:
        needed = None
    elif leans_below or k_low / n > t:
        needed = bounds.rate_needed(k_up if leans_below else k_low, n, t, alpha, d)
    else:
        needed = None  # the straddling bucket holds the threshold: more samples will not tell
    leans_below = below or (not above and leans_below)
    bound = (
        bounds.rate_upper(k_up, n, alpha, d)
        if leans_below
        else bounds.rate_lower(k_low, n, alpha, d)
    )
    return _Judgement(above, below, bound, leans_below, needed)


def _quantile(counts: list[int], q: float, t: float, alpha: float, d: float) -> _Judgement:
    """``quantile < t`` ⟺ the share of requests slower than ``t`` is below ``1 - q``."""
    n = sum(counts)
    # Buckets are (previous edge, edge]: those whose edge is below t are surely faster, those
    # whose previous edge is at or above t surely slower; one bucket may straddle t.
    first = bisect_left(BUCKET_BOUNDS_MS, t)
    faster, slower = sum(counts[:first]), sum(counts[first + 1 :])
    # The quantile sits below t when the share above t is below 1 - q: the rate sides swap.
    share = _rate(n - faster, slower, n, 1 - q, alpha, d, with_bound=False)
    if share.leans_below:  # few slow requests: the quantile's upper bound
        bound = _edge_at_rank(counts, _most_events(n, 1 - q, alpha, d), above=False)
    else:
        bound = _edge_at_rank(counts, _fewest_events(n, 1 - q, alpha, d), above=True)
    return _Judgement(share.above, share.below, bound, share.leans_below, share.needed)


def _most_events(n: int, level: float, alpha: float, d: float) -> int:
    """The most events of ``n`` that still show the rate below ``level`` (-1 if none does)."""
    low, high = -1, n  # shows_below holds at low (or low is -1), fails at high
    while high - low > 1:
        mid = (low + high) // 2
        if bounds.shows_below(mid, n, level, alpha, d):
            low = mid
        else:
            high = mid
    return low


def _fewest_events(n: int, level: float, alpha: float, d: float) -> int:
    """The fewest events of ``n`` that show the rate above ``level`` (n + 1 if none does)."""
    low, high = -1, n + 1
    while high - low > 1:
        mid = (low + high) // 2
        if mid <= n and bounds.shows_above(mid, n, level, alpha, d):
            high = mid
        else:
            low = mid
    return high


def _edge_at_rank(counts: list[int], events: int, *, above: bool) -> float:
    """For ``above=False``: the smallest bucket edge with at most ``events`` requests slower
    (the quantile is at most that edge). For ``above=True``: the largest edge with at least
    ``events`` requests slower (the quantile is above it); 0 when there is none."""
    tail = sum(counts)
    best = 0.0 if above else math.inf
    for i, edge in enumerate(BUCKET_BOUNDS_MS):
        tail -= counts[i]
        if above and tail >= events:
            best = edge
        if not above and tail <= events:
            return edge
    return best


def _mean(
    total: float,
    squares: float,
    n: int,
    span: tuple[float, float],
    t: float,
    alpha: float,
    d: float,
) -> _Judgement:
    """The mean of ``n`` values in ``span`` (their sum and sum of squares) against ``t``."""
    low, high = span
    lower, upper = bounds.mean_bounds(total, squares, n, alpha, low, high, d)
    above, below = lower > t, upper < t
    leans_below = below or (not above and total / n < t)
    needed = (
        None if above or below else bounds.mean_needed(total, squares, n, t, alpha, low, high, d)
    )
    return _Judgement(above, below, upper if leans_below else lower, leans_below, needed)


def _wins(window: TrackWindow) -> tuple[float, float, int]:
    """Sum and sum of squares of the pairs' scores (shadow better 1, same 0.5, worse 0), and
    the pairs judged."""
    fb = window.feedback
    better, same = fb.get("shadow_better", 0), fb.get("shadow_same", 0)
    return better + 0.5 * same, better + 0.25 * same, better + same + fb.get("shadow_worse", 0)


def _events(metric: str, window: TrackWindow) -> tuple[int, int]:
    if metric == "error_rate":
        return sum(window.errors.values()), window.requests
    yes = window.feedback.get("hallucination_yes", 0)
    return yes, yes + window.feedback.get("hallucination_no", 0)


def _histogram(metric: str, window: TrackWindow) -> list[int]:
    return window.latency if metric.startswith("latency_") else window.ttfb


def _unit(metric: str) -> str:
    if metric in ("error_rate", "hallucination_rate", "shadow_win_rate"):
        return "%"
    if metric == "user_satisfaction":
        return "/5"
    return "ms"


def _noun(metric: str) -> str:
    return {
        "hallucination_rate": "judged answers",
        "user_satisfaction": "ratings",
        "shadow_win_rate": "judged pairs",
    }.get(metric, "requests")


def _figures(metric: str, value: float, j: _Judgement, sample: int, unit: str) -> str:
    """``0.4 % (upper bound 0.9 %) over 412 requests``."""
    text = _fmt(value, unit)
    if j.bound is not None:
        text += f" ({'upper' if j.leans_below else 'lower'} bound {_fmt(j.bound, unit)})"
    return f"{text} over {sample:,} {_noun(metric)}"


def _fmt(x: float, unit: str) -> str:
    """Two significant figures (all the integer digits), no exponent: ``0.42 %``, ``2000 ms``."""
    if math.isinf(x):
        return f"more than {BUCKET_BOUNDS_MS[-1]:g} ms" if unit == "ms" else "∞"
    shown = x * 100 if unit == "%" else x
    if shown == 0:
        digits = "0"
    else:
        decimals = max(0, 1 - math.floor(math.log10(abs(shown))))
        digits = f"{shown:.{decimals}f}"
        digits = digits.rstrip("0").rstrip(".") if "." in digits else digits
    return f"{digits}{unit}" if unit == "/5" else f"{digits} {unit}".rstrip()
