"""Fixed-horizon comparisons of two tracks, metric by metric, for the end report of an A/B test.

An A/B test holds a fixed split until its duration or sample size is reached and is judged once,
at the end, so classical tests keep their error rates here (the canary's repeated looks need
``sequential`` instead). Each metric gives a ``Comparison``: both arms' values, the difference
``b − a`` with an interval at the chosen confidence, a two-sided p-value and a verdict from
track b's point of view. Lower is better for rates and latencies, higher for satisfaction.

A verdict is ``b_better`` or ``b_worse`` when the p-value is below ``1 − confidence``,
``no_difference`` otherwise, and ``insufficient_data`` below the minimum sample of either arm.
Several metrics are tested at once and by default no multiplicity correction is applied: with
four metrics and no real difference, some verdict is significant in up to 1 − 0.95⁴ ≈ 19 % of
tests. ``compare(..., holm=True)`` adjusts the p-values with Holm–Bonferroni first (the intervals
stay unadjusted, at the stated confidence).

The distribution functions are written here with ``math`` alone: the normal CDF via ``erfc``,
its inverse (Acklam), and Student's t via the regularized incomplete beta function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from config.metrics import TrackWindow, percentile
from config.pricing import Price
from control.analysis import usage
from control.analysis.distributions import (
    normal_quantile,
    student_t_quantile,
    student_t_two_sided_p,
    two_sided_normal_p,
)

Verdict = Literal["b_better", "b_worse", "no_difference", "insufficient_data"]

LOWER_IS_BETTER = frozenset({"error_rate", "hallucination_rate"})
USAGE = frozenset({"tokens_per_request", "cost_per_request"})
"""Means over the requests with usage, compared like ratings (Welch); lower is better."""
"""Besides every latency and time-to-first-byte quantile; everything else is higher-is-better."""
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class Comparison:
    """One metric of an A/B test; ``difference`` and ``interval`` are ``b − a``."""

    metric: str
    verdict: Verdict
    a_value: float | None
    b_value: float | None
    difference: float | None
    interval: tuple[float, float] | None
    p_value: float | None
    samples: tuple[int, int]
    confidence: float
    holm_adjusted: bool
    """``p_value`` (and so the verdict) is Holm-adjusted over the metrics of one report."""
    summary: str


def compare(
    a: TrackWindow,
    b: TrackWindow,
    metrics: Sequence[str],
    confidence: float,
    *,
    holm: bool = False,
    prices: tuple[Price | None, Price | None] = (None, None),
) -> list[Comparison]:
    """One ``Comparison`` per metric, in order; an unknown metric name raises ``ValueError``.

    With ``holm`` the family is the metrics that were tested: ``insufficient_data`` ones have no
    p-value and take no share of the error budget.
    """
    results = [_compare_one(metric, a, b, confidence, prices) for metric in metrics]
    return _holm_verdicts(results) if holm else results


def _compare_one(
    metric: str,
    a: TrackWindow,
    b: TrackWindow,
    confidence: float,
    prices: tuple[Price | None, Price | None],
) -> Comparison:
    if metric in USAGE:
        sa = usage.sums(metric, a, prices[0], 1)
        sb = usage.sums(metric, b, prices[1], 1)
        if sa is None or sb is None:
            return _finish(metric, None, None, None, None, None, (0, 0), confidence)
        return mean_rating(
            sa.total, sa.squares, sa.n, sb.total, sb.squares, sb.n, confidence, metric=metric
        )
    if metric in LOWER_IS_BETTER:
        return two_proportions(metric, *_events(metric, a), *_events(metric, b), confidence)
    if metric == "user_satisfaction":
        return mean_rating(*_ratings(a), *_ratings(b), confidence)
    kind, _, name = metric.partition("_")
    if kind in ("latency", "ttfb") and name in QUANTILES:
        a_counts, b_counts = (a.latency, b.latency) if kind == "latency" else (a.ttfb, b.ttfb)
        return latency(a_counts, b_counts, confidence, metric=metric)
    raise ValueError(f"unknown metric {metric!r}")


def _events(metric: str, window: TrackWindow) -> tuple[int, int]:
    """The events and the sample of a rate metric."""
    if metric == "error_rate":
        return sum(window.errors.values()), window.requests
    yes = window.feedback.get("hallucination_yes", 0)
    return yes, yes + window.feedback.get("hallucination_no", 0)


def _ratings(window: TrackWindow) -> tuple[int, int, int]:
    fb = window.feedback
    return fb.get("rating_sum", 0), fb.get("rating_sq", 0), fb.get("rating_n", 0)


def two_proportions(
    metric: str,
    events_a: int,
    n_a: int,
    events_b: int,
    n_b: int,
    confidence: float,
    *,
    min_n: int = 100,
) -> Comparison:
    """Event rates: pooled two-proportion z-test, Newcombe (Wilson score) interval.

    The Newcombe hybrid interval rather than Wald's because rates here are often a few per cent
    or zero, where Wald's interval is too narrow and collapses to a point at zero events.
    With no events in either arm (or only events), the pooled variance is zero and the z-test
    is undefined; conditioned on the events seen, every allocation is the observed one, so
    Fisher's exact test gives p = 1: ``no_difference``, once both arms reach ``min_n``.
    The z-test is optimistic below about ten events per arm (0 vs 5 of 100: p = 0.024 where
    Fisher's test gives 0.059); read such verdicts with the event counts in the summary.
    """
    alpha = _alpha(confidence)
    if not (0 <= events_a <= n_a and 0 <= events_b <= n_b):
        raise ValueError(f"{metric}: events must lie between 0 and the sample size")
    rate_a = events_a / n_a if n_a else None
    rate_b = events_b / n_b if n_b else None
    if rate_a is None or rate_b is None or min(n_a, n_b) < min_n:
        difference = rate_b - rate_a if rate_a is not None and rate_b is not None else None
        return _finish(metric, rate_a, rate_b, difference, None, None, (n_a, n_b), confidence)
    pooled = (events_a + events_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    difference = rate_b - rate_a
    p = two_sided_normal_p(difference / se) if se > 0 else 1.0
    z = normal_quantile(1 - alpha / 2)
    low_a, high_a = _wilson(events_a, n_a, z)
    low_b, high_b = _wilson(events_b, n_b, z)
    interval = (
        difference - math.hypot(rate_b - low_b, high_a - rate_a),
        difference + math.hypot(high_b - rate_b, rate_a - low_a),
    )
    return _finish(metric, rate_a, rate_b, difference, interval, p, (n_a, n_b), confidence)


def latency(
    a_counts: Sequence[int],
    b_counts: Sequence[int],
    confidence: float,
    *,
    metric: str = "latency_p95",
    min_n: int = 100,
) -> Comparison:
    """Latency histograms: Mann–Whitney U on the binned samples; the values are the quantile.

    The value of each arm is the quantile the metric names (``_p50``, ``_p95``, ``_p99``), as the
    upper bound of its bucket. The test asks whether one arm tends to be slower over the whole
    distribution: ties within a bucket take midranks, the variance the tie correction, and the
    normal approximation a continuity correction (as scipy's and R's defaults do). The direction
    is the sign of ``U − n_a·n_b/2`` with U counting pairs where b is slower, not the sign of
    the quantile difference, which can be zero when both quantiles fall in one bucket.

    No interval: the U test says nothing about the size of a quantile's shift, and a quantile
    is known only to its bucket (each about 19 % wide), so any interval would be a different,
    coarser quantity than the verdict rests on.
    """
    if len(a_counts) != len(b_counts):
        raise ValueError(f"{metric}: the histograms have different bucket layouts")
    q = QUANTILES.get(metric.rpartition("_")[2])
    if q is None:
        raise ValueError(f"{metric}: the quantile must be one of {', '.join(QUANTILES)}")
    value_a, value_b = percentile(a_counts, q), percentile(b_counts, q)
    difference = None
    if value_a is not None and value_b is not None and not value_a == value_b == math.inf:
        difference = value_b - value_a
    samples = (sum(a_counts), sum(b_counts))
    if min(samples) < max(min_n, 1):
        return _finish(metric, value_a, value_b, difference, None, None, samples, confidence)
    excess, sigma = mann_whitney(a_counts, b_counts)
    p = 1.0
    if sigma > 0:
        p = two_sided_normal_p(max(abs(excess) - 0.5, 0.0) / sigma)
    return _finish(
        metric, value_a, value_b, difference, None, p, samples, confidence, direction=excess
    )


def mann_whitney(a_counts: Sequence[int], b_counts: Sequence[int]) -> tuple[float, float]:
    """``U − n_a·n_b/2`` and the tie-corrected standard deviation of U, from bucket counts.

    U counts the pairs (a sample, b sample) where b's is in a higher bucket, plus half the pairs
    in the same bucket: positive when b tends to be slower.
    """
    n_a, n_b = sum(a_counts), sum(b_counts)
    total = n_a + n_b
    u = 0.0
    a_below = 0
    ties = 0
    for count_a, count_b in zip(a_counts, b_counts, strict=True):
        u += count_b * (a_below + count_a / 2)
        a_below += count_a
        tied = count_a + count_b
        ties += tied**3 - tied
    if total < 2:
        return u - n_a * n_b / 2, 0.0
    variance = n_a * n_b / 12 * ((total + 1) - ties / (total * (total - 1)))
    return u - n_a * n_b / 2, math.sqrt(max(variance, 0.0))


def mean_rating(
    a_sum: float,
    a_sq: float,
    a_n: int,
    b_sum: float,
    b_sq: float,
    b_n: int,
    confidence: float,
    *,
    min_n: int = 30,
    metric: str = "user_satisfaction",
) -> Comparison:
    """Mean ratings (or tokens and cost per request, ``metric``): Welch's t-test and interval,
    with Student's t at the Welch df.

    Student's t is used at every df rather than switching to the normal at df 30: there the
    normal would turn a 5 % test into a 5.9 % one, and the t CDF costs nothing extra. Below
    ``min_n`` ratings in either arm (30 by default, and never fewer than 2) the verdict is
    ``insufficient_data``; so is a window whose squares are missing (``rating_sq`` less than
    ``sum²/n``, as in windows written before squares were counted): the variance is unknown.
    """
    alpha = _alpha(confidence)
    mean_a = a_sum / a_n if a_n else None
    mean_b = b_sum / b_n if b_n else None
    difference = mean_b - mean_a if mean_a is not None and mean_b is not None else None
    var_a, var_b = _variance(a_sum, a_sq, a_n), _variance(b_sum, b_sq, b_n)
    samples = (a_n, b_n)
    if difference is None or var_a is None or var_b is None or min(a_n, b_n) < max(min_n, 2):
        return _finish(metric, mean_a, mean_b, difference, None, None, samples, confidence)
    var_mean_a, var_mean_b = var_a / a_n, var_b / b_n
    se = math.sqrt(var_mean_a + var_mean_b)
    if se == 0:
        p = 1.0 if difference == 0 else 0.0
        return _finish(
            metric, mean_a, mean_b, difference, (difference,) * 2, p, samples, confidence
        )
    df = se**4 / (var_mean_a**2 / (a_n - 1) + var_mean_b**2 / (b_n - 1))
    p = student_t_two_sided_p(difference / se, df)
    half = student_t_quantile(1 - alpha / 2, df) * se
    interval = (difference - half, difference + half)
    return _finish(metric, mean_a, mean_b, difference, interval, p, samples, confidence)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the given order: reject where adjusted < alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _holm_verdicts(results: list[Comparison]) -> list[Comparison]:
    tested = [(i, r.p_value) for i, r in enumerate(results) if r.p_value is not None]
    adjusted = holm_adjust([p for _, p in tested])
    out = list(results)
    for (index, _), p in zip(tested, adjusted, strict=True):
        r = results[index]
        # An adjusted p-value is never smaller, so Holm can only withdraw a difference.
        verdict: Verdict = "no_difference" if p >= _alpha(r.confidence) else r.verdict
        adjusted_result = replace(r, p_value=p, verdict=verdict, holm_adjusted=True)
        out[index] = replace(adjusted_result, summary=_summary(adjusted_result))
    return out


def _finish(
    metric: str,
    a_value: float | None,
    b_value: float | None,
    difference: float | None,
    interval: tuple[float, float] | None,
    p: float | None,
    samples: tuple[int, int],
    confidence: float,
    *,
    direction: float | None = None,
) -> Comparison:
    """The verdict and summary; ``direction`` (default: the difference) gives b's side."""
    sign = direction if direction is not None else difference
    verdict: Verdict
    if p is None:
        verdict = "insufficient_data"
    elif p >= _alpha(confidence) or not sign:
        verdict = "no_difference"
    else:
        lower_is_better = metric in LOWER_IS_BETTER | USAGE or metric.startswith(
            ("latency_", "ttfb_")
        )
        verdict = "b_worse" if (sign > 0) == lower_is_better else "b_better"
    result = Comparison(
        metric, verdict, a_value, b_value, difference, interval, p, samples, confidence, False, ""
    )
    return replace(result, summary=_summary(result))


def _summary(c: Comparison) -> str:
    """``error_rate: a 1.02% (n=10000) vs b 2.95% (n=10000), b worse, p=3e-12; b − a …``."""
    fmt = _formatter(c.metric)
    head = (
        f"{c.metric}: a {fmt(c.a_value)} (n={c.samples[0]}) vs b {fmt(c.b_value)}"
        f" (n={c.samples[1]}), {c.verdict.replace('_', ' ')}"
    )
    if c.p_value is None:
        return head
    p = "p<1e-300" if c.p_value == 0 else f"p={c.p_value:.2g}"
    head += f", {p}{' (Holm)' if c.holm_adjusted else ''}"
    if c.interval is None or c.difference is None:
        return head
    signed = _formatter(c.metric, signed=True)
    low, high = c.interval
    return (
        f"{head}; b − a {signed(c.difference)},"
        f" {c.confidence * 100:g}% CI [{signed(low)}, {signed(high)}]"
    )


def _formatter(metric: str, *, signed: bool = False) -> Callable[[float | None], str]:
    """Rates in per cent (differences in points), latencies in ms, ratings as they are."""
    if metric in LOWER_IS_BETTER:
        spec, scale, unit = ("+.2f", 100, " pp") if signed else (".2f", 100, "%")
    elif metric.startswith(("latency_", "ttfb_")):
        spec, scale, unit = ("+g" if signed else "g"), 1, " ms"
    elif metric == "tokens_per_request":
        spec, scale, unit = ("+.1f" if signed else ".1f"), 1, " tokens"
    elif metric == "cost_per_request":
        spec, scale, unit = ("+.3g" if signed else ".3g"), 1, " $"
    else:
        spec, scale, unit = ("+.3f" if signed else ".2f"), 1, ""

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value * scale:{spec}}{unit}"

    return fmt


def _alpha(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence}")
    return 1 - confidence


def _wilson(events: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval for one proportion: never outside [0, 1], not empty at 0 events."""
    rate = events / n
    shrink = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _variance(total: float, squares: float, n: int) -> float | None:
    """The sample variance from sums (exact for integers); None when the squares cannot be
    right (a relative tolerance for float sums, such as costs)."""
    if n < 2:
        return 0.0
    scaled = n * squares - total * total
    if scaled < 0 and isinstance(scaled, float) and -scaled <= 1e-9 * total * total:
        scaled = 0.0
    return scaled / (n * (n - 1)) if scaled >= 0 else None
