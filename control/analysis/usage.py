"""``tokens_per_request`` and ``cost_per_request``: thresholds and comparisons with the baseline.

Both are means over the requests whose upstream reported ``usage`` (``usage_reported``):
tokens are prompt + completion, cost is ``prompt·p + completion·q`` at the side's prices per
token (``config.pricing.Price``). Bounds come from ``usage_bounds`` (anytime-valid).

- An absolute threshold (``tokens_per_request < 900``, ``cost_per_request < $0.002``) is
  judged like ``verdict.assess``: PASS when the bound on its good side is shown, FAIL when the
  other one is, each wrong with probability at most ``1 − confidence`` over every look.
- A threshold relative to the baseline (``< baseline + 10%``, ratio ``r`` = 1.1) compares the
  two arms since the rollout began with two confidence sequences: the candidate is shown
  above ``r`` × the baseline when its lower bound exceeds ``r`` × the baseline's upper bound,
  each side at half of ``alpha``; below, the mirror. That is a sequential test: it may look
  every interval for the whole rollout and still fails a candidate that is not worse than
  ``r`` × the baseline with probability at most ``alpha`` (``looks.USAGE_ALPHA``).
"""

from __future__ import annotations

from config.metrics import TrackWindow
from config.pricing import Price
from config.thresholds import Threshold
from control.analysis import usage_bounds as ub
from control.analysis.usage_bounds import Sums
from control.analysis.verdict import Assessment, Verdict

MIN_USAGE = 100
"""Requests with usage each arm needs before a comparison with the baseline decides."""


def sums(metric: str, window: TrackWindow, price: Price | None, max_tokens: int) -> Sums | None:
    """The window's values of ``metric``; ``None`` for cost without a price."""
    if metric == "tokens_per_request":
        a = b = 1.0
    elif price is None:
        return None
    else:
        a, b = price.per_token()
    w = window
    total = a * w.prompt_tokens + b * w.completion_tokens
    squares = a * a * w.prompt_sq + 2 * a * b * w.cross + b * b * w.completion_sq
    return Sums(total, squares, w.usage_reported, max(a, b) * max_tokens)


def value(metric: str, window: TrackWindow, price: Price | None) -> float | None:
    s = sums(metric, window, price, 1)
    return None if s is None or s.n == 0 else s.mean


def unit(metric: str) -> str:
    return "tokens" if metric == "tokens_per_request" else "$"


def fmt(x: float, metric: str) -> str:
    return f"{x:,.0f} tokens" if metric == "tokens_per_request" else f"${x:.3g}"


def _empty(metric: str, against: str, s: Sums | None) -> Assessment | None:
    """The assessment that stops before any bound: no price, no usage, no squares."""
    why = None
    if s is None:
        why = "no price for this side (pricing)"
    elif s.n == 0:
        why = "no requests with usage yet"
    elif not s.spread_known():
        why = "usage counted without squares (a proxy older than this control plane)"
    if why is None:
        return None
    return Assessment(metric, Verdict.INCONCLUSIVE, None, against, 0, why, unit=unit(metric))


def assess(
    metric: str, threshold: Threshold, s: Sums | None, confidence: float, *, design_effect: float
) -> Assessment:
    """An absolute threshold as a success criterion: PASS, FAIL or INCONCLUSIVE."""
    stop = _empty(metric, str(threshold), s)
    if stop is not None or s is None:
        return stop or _no_price(metric, str(threshold))
    alpha, d, t = 1 - confidence, design_effect, threshold.value
    wants_below = threshold.op in ("<", "<=")
    below = ub.shows(s, t, alpha, above=False, design_effect=d)
    above = not below and ub.shows(s, t, alpha, above=True, design_effect=d)
    good, bad = (below, above) if wants_below else (above, below)
    leans_below = below or (not above and s.mean < t)
    bound = ub.upper(s, alpha, d) if leans_below else ub.lower(s, alpha, d)
    figures = (
        f"{fmt(s.mean, metric)} ({'upper' if leans_below else 'lower'} bound "
        f"{fmt(bound, metric)}) over {s.n:,} requests with usage"
    )
    if good or bad:
        side = "below" if below else "above"
        verdict, clause, more = (Verdict.PASS if good else Verdict.FAIL), side, None
    else:
        verdict, more = Verdict.INCONCLUSIVE, ub.needed(s, t, alpha, d)
        clause = f"not yet {'below' if wants_below else 'above'}"
    reason = f"{figures}, {clause} {fmt(t, metric)}"
    if more is not None:
        reason += f" (about {more:,} more requests at this rate)"
    return Assessment(
        metric, verdict, s.mean, str(threshold), s.n, reason, bound, more, unit(metric)
    )


def breached(
    metric: str, condition: Threshold, s: Sums | None, confidence: float, *, design_effect: float
) -> Assessment:
    """An absolute ``rollback_if`` condition: FAIL when shown to hold, PASS otherwise."""
    stop = _empty(metric, str(condition), s)
    if stop is not None or s is None:
        return stop or _no_price(metric, str(condition))
    alpha, t = 1 - confidence, condition.value
    holds_above = condition.op in (">", ">=")
    hit = ub.shows(s, t, alpha, above=holds_above, design_effect=design_effect)
    bound = (ub.lower if holds_above else ub.upper)(s, alpha, design_effect)
    side = "above" if holds_above else "below"
    clause = f"{side} {fmt(t, metric)}: roll back" if hit else f"not shown {side} {fmt(t, metric)}"
    reason = (
        f"{fmt(s.mean, metric)} ({'lower' if holds_above else 'upper'} bound "
        f"{fmt(bound, metric)}) over {s.n:,} requests with usage, {clause}"
    )
    verdict = Verdict.FAIL if hit else Verdict.PASS
    return Assessment(
        metric, verdict, s.mean, str(condition), s.n, reason, bound, None, unit(metric)
    )


def _no_price(metric: str, against: str) -> Assessment:
    return Assessment(metric, Verdict.INCONCLUSIVE, None, against, 0, "no price", unit=unit(metric))


def versus_baseline(
    metric: str,
    threshold: Threshold,
    candidate: Sums | None,
    baseline: Sums | None,
    *,
    condition: bool,
    alpha: float,
    pass_alpha: float,
    design_effect: float,
) -> Assessment:
    """A threshold relative to the baseline (``threshold.relative``, ``value`` the ratio
    ``r``), on both arms' counts since the rollout began. A ``condition`` (``rollback_if``)
    FAILs when shown to hold (at ``alpha``) and PASSes otherwise; a success criterion FAILs
    when the candidate is shown on its bad side of ``r`` × the baseline (at ``alpha``),
    PASSes when shown on its good side (at ``pass_alpha``), else is INCONCLUSIVE."""
    against = str(threshold)
    for s in (candidate, baseline):
        stop = _empty(metric, against, s)
        if stop is not None:
            return stop
    assert candidate is not None and baseline is not None
    r, d = threshold.value, design_effect
    less = threshold.op in ("<", "<=")
    fail_above = less != condition  # a criterion '<' fails above, a condition '>' holds above

    def side(above: bool, a: float) -> tuple[bool, float, float]:
        if above:
            c, b = ub.lower(candidate, a / 2, d), ub.upper(baseline, a / 2, d)
            return c > r * b, c, b
        c, b = ub.upper(candidate, a / 2, d), ub.lower(baseline, a / 2, d)
        return c < r * b, c, b

    failed, c_bound, b_bound = side(fail_above, alpha)
    passed, bounds_above = False, fail_above
    if not failed and not condition:
        passed, c_bound, b_bound = side(not fail_above, pass_alpha)
        bounds_above = not fail_above
    short = MIN_USAGE - min(candidate.n, baseline.n)
    words = ("lower", "above") if bounds_above else ("upper", "below")
    shown = f"{words[0]} bound {fmt(c_bound, metric)} {words[1]} {r:g} × {fmt(b_bound, metric)}"
    more = None
    if short > 0:
        verdict, clause, more = Verdict.INCONCLUSIVE, f"{short} more requests with usage", short
    elif failed:
        verdict, clause = Verdict.FAIL, shown + (": roll back" if condition else "")
    elif passed or condition:
        verdict, clause = Verdict.PASS, shown if passed else f"not shown: {shown}"
    else:
        verdict, clause = Verdict.INCONCLUSIVE, f"not yet shown either side ({shown})"
    reason = (
        f"{fmt(candidate.mean, metric)} over {candidate.n:,} requests against the baseline's "
        f"{fmt(baseline.mean, metric)} over {baseline.n:,}, {clause}"
    )
    return Assessment(
        metric, verdict, candidate.mean, against, candidate.n, reason, c_bound, more, unit(metric)
    )
