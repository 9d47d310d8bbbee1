"""Confidence bounds that stay valid however often they are looked at (confidence sequences).

The control plane judges a threshold every few seconds for as long as a phase lasts. A fixed-
sample interval checked at every look would, sooner or later, cross any threshold by chance;
these bounds are built from nonnegative supermartingales (mixtures of likelihood ratios), so
by Ville's inequality the chance that a bound is *ever* wrong, over every look, is at most
``alpha``. Each side is one-sided: ``rate_upper`` is wrong when it falls below the true rate.

Rates (errors, hallucinations, the share of requests slower than a latency edge): testing
``p >= p0`` against alternatives with odds ``c`` times lower, the likelihood ratio after
``k`` events in ``n`` trials is ``c**k / (1 - p0 + c*p0)**n``. ``BELOW`` mixes a heavy weight
on ``c = 0`` (no events at all: the rule of three) with a few fractions that keep the bound
useful once some events occur; ``ABOVE`` mixes worse odds for the lower bound. Each ratio is
monotone in ``p0``, so the rejected values form one interval and a bound is its edge, found
by a root search (regula falsi). Deciding a threshold needs no search: one evaluation at it.

Means of values in a known range (ratings 1–5): the empirical-Bernstein supermartingale
``exp(λΣξ − ψ(λ)Σξ²)``, ``ξ = y − m`` on the range rescaled to [0, 1] and
``ψ(λ) = −log(1 − λ) − λ`` (Fan et al. 2015: ``exp(λξ − ψ(λ)ξ²) <= 1 + λξ`` for ``ξ >= −1``).
It needs only the sum, the sum of squares and the count, and adapts to the spread.

``design_effect`` (default 1: independent requests) divides every count by the variance
inflation of clustered samples (sticky users send many requests each); the bounds then
treat ``n / design_effect`` requests as independent — a quasi-likelihood correction, checked
by simulation rather than proved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

Mixture = tuple[tuple[float, float], ...]
"""(odds ratio or betting fraction, weight) pairs; the weights add up to 1."""

BELOW: Mixture = ((0.0, 0.35), (0.25, 0.3), (0.5, 0.25), (0.75, 0.1))
"""Alternatives below the null rate, as odds ratios. Without errors ``< 1 %`` passes at 95 %
after 364 requests, 1.22 × the rule of three's 298 (the weight on ``c = 0`` sets this). The
others keep it quick once errors occur — at 0.25 % errors it passes after about 940
requests, at 0.5 % after about 2,700 — and ``0.75`` lets a rate up to about 0.8 × the
threshold pass at all, slowly (a heavier weight on ``c = 0`` saves a few dozen requests at
zero errors and costs hundreds at these rates; ``bench/decisions.py`` chose this one)."""
ABOVE: Mixture = ((1.5, 0.25), (2.0, 0.25), (4.0, 0.25), (10.0, 0.25))
"""Alternatives above the null rate, as odds ratios: from a modest excess to an outage."""
BETS: Mixture = (
    (0.05, 1 / 6),
    (0.1, 1 / 6),
    (0.2, 1 / 6),
    (0.3, 1 / 6),
    (0.4, 1 / 6),
    (0.5, 1 / 6),
)
"""Betting fractions of the mean bound. Up to 0.5 the evidence is monotone in the hypothesised
mean (``λ >= 2ψ(λ)``), so the rejected means form one interval; the cap also limits how fast
evidence grows (100 ratings of 5 give a lower bound of 4.65)."""

_TOLERANCE = 1e-5
"""Relative precision of a bound's search (far below what is reported)."""
_FLOOR = 1e-12
"""Rates below this are reported as 0 (a lower bound) or searched from here (an upper one)."""
_LIMIT = 10**12
"""Beyond this many samples ``samples_to_decide`` calls a decision out of reach."""


def _log_mix(terms: Sequence[tuple[float, float]]) -> float:
    """log Σ exp(log w + log ratio) over (log weight, log ratio) pairs."""
    top = -math.inf
    for lw, x in terms:
        top = max(top, lw + x)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(lw + x - top) for lw, x in terms if x != -math.inf))


def _prepared(mixture: Mixture) -> tuple[tuple[float, float, float], ...]:
    """(ratio, log ratio, log weight) per component, computed once."""
    return tuple((c, math.log(c) if c > 0 else -math.inf, math.log(w)) for c, w in mixture)


_BELOW, _ABOVE = _prepared(BELOW), _prepared(ABOVE)


def rate_evidence(k: float, n: float, p0: float, *, below: bool) -> float:
    """Log of the mixture likelihood ratio against ``p >= p0`` (``below``) or ``p <= p0``.

    ``0 < p0 < 1``; ``k`` events in ``n`` trials (real numbers allowed: scaled counts).
    """
    terms = []
    for c, log_c, log_w in _BELOW if below else _ABOVE:
        if c == 0.0:  # the alternative "no events at all", dead at the first event
            if k == 0:
                terms.append((log_w, -n * math.log1p(-p0)))
        else:
            terms.append((log_w, k * log_c - n * math.log1p(p0 * (c - 1))))
    return _log_mix(terms)


@lru_cache(maxsize=8192)
def shows_below(k: int, n: int, level: float, alpha: float, design_effect: float = 1.0) -> bool:
    """The rate is shown below ``level`` with error probability at most ``alpha``, over all looks."""
    if n <= 0 or level <= 0.0:
        return False
    if level >= 1.0:
        return k < n
    d = design_effect
    return rate_evidence(k / d, n / d, level, below=True) >= -math.log(alpha)


@lru_cache(maxsize=8192)
def shows_above(k: int, n: int, level: float, alpha: float, design_effect: float = 1.0) -> bool:
    """The rate is shown above ``level`` with error probability at most ``alpha``, over all looks."""
    if n <= 0 or level >= 1.0:
        return False
    if level <= 0.0:
        return k > 0
    d = design_effect
    return rate_evidence(k / d, n / d, level, below=False) >= -math.log(alpha)


def _crossing(f: Callable[[float], float], a: float, b: float) -> float:
    """Where an increasing-or-decreasing continuous ``f`` crosses 0, given ``f(a) < 0 <= f(b)``:
    the Illinois variant of regula falsi (a handful of evaluations, where bisection needs
    twenty), stopped within ``_TOLERANCE``; returns the end on ``b``'s side."""
    fa, fb, kept = f(a), f(b), 0
    for _ in range(100):
        if abs(b - a) <= _TOLERANCE * max(abs(a), abs(b)):
            break
        c = b - fb * (b - a) / (fb - fa)
        if not min(a, b) < c < max(a, b):
            c = (a + b) / 2
        fc = f(c)
        if 0 <= fc < 1e-6:  # on the rejected side, within a hair of the boundary
            return c
        if fc >= 0:
            b, fb = c, fc
            fa, kept = (fa / 2, 1) if kept == 1 else (fa, 1)
        else:
            a, fa = c, fc
            fb, kept = (fb / 2, -1) if kept == -1 else (fb, -1)
    return b


def _rate_bound(k: int, n: int, alpha: float, d: float, *, below: bool) -> float:
    """The edge of the rejected set of ``p0``, searched between the observed rate and a point
    well beyond the bound (pushed out to the extremes if it is not rejected)."""
    target, k_d, n_d = -math.log(alpha), k / d, n / d
    observed = max(k / n, _FLOOR if below else 0.01 / n)

    def f(p: float) -> float:
        return rate_evidence(k_d, n_d, p, below=below) - target

    far = observed + 10 * (k + 1) / n if below else observed / (10 * (1 + 10 / max(k, 1)))
    far = min(far, 1 - 1e-9) if below else max(far, _FLOOR)
    if f(far) < 0:
        far = 1 - 1e-9 if below else _FLOOR
        if f(far) < 0:  # nothing short of the extremes is rejected
            return 1.0 if below else 0.0
    return _crossing(f, observed, far)


@lru_cache(maxsize=8192)
def rate_upper(k: int, n: int, alpha: float, design_effect: float = 1.0) -> float:
    """The anytime-valid upper confidence bound on the rate: every ``p0`` above it is rejected.

    1.0 without trials or when every trial was an event.
    """
    if n <= 0 or k >= n:
        return 1.0
    return _rate_bound(k, n, alpha, design_effect, below=True)


@lru_cache(maxsize=8192)
def rate_lower(k: int, n: int, alpha: float, design_effect: float = 1.0) -> float:
    """The anytime-valid lower confidence bound on the rate (0.0 without events)."""
    if n <= 0 or k <= 0 or not shows_above(k, n, _FLOOR, alpha, design_effect):
        return 0.0
    return _rate_bound(k, n, alpha, design_effect, below=False)


def samples_to_decide(slopes: Sequence[tuple[float, float]], n: float, target: float) -> int | None:
    """The smallest total ``N >= n`` at which ``log Σ w·exp(N·s) >= target``.

    ``slopes`` are (weight, per-sample log ratio) pairs at the currently observed rates: each
    component's log ratio grows linearly in the sample when the rates hold, so the mixture is
    convex in ``N`` and the crossing is found by bisection. ``None`` when no component grows
    (the observed value sits at, or on the wrong side of, the threshold) or it is out of reach.
    """
    growing = [(w, s) for w, s in slopes if s > 0]
    if not growing:
        return None
    mix = [(math.log(w), s) for w, s in slopes if s != -math.inf]

    def reached(size: float) -> bool:
        return _log_mix([(lw, s * size) for lw, s in mix]) >= target

    w, s = max(growing, key=lambda ws: ws[1])
    high = max(n, (target - math.log(w)) / s)
    if high > _LIMIT:
        return None
    low = n
    if reached(low):
        return math.ceil(low)
    while high - low > 0.5:
        mid = (low + high) / 2
        if reached(mid):
            high = mid
        else:
            low = mid
    return math.ceil(high)


@lru_cache(maxsize=8192)
def rate_needed(
    k: int, n: int, level: float, alpha: float, design_effect: float = 1.0
) -> int | None:
    """More trials until the rate is shown below (or above) ``level``, if ``k/n`` held.

    ``None`` without trials, when ``k/n`` equals ``level`` or the decision is out of reach.
    """
    if n <= 0 or not 0.0 < level < 1.0 or k / n == level:
        return None
    rate = k / n
    mixture = BELOW if rate < level else ABOVE
    slopes = []
    for c, w in mixture:
        if c == 0.0:
            slope = -math.inf if rate > 0 else -math.log1p(-level)
        else:
            slope = rate * math.log(c) - math.log1p(level * (c - 1))
        slopes.append((w, slope))
    total = samples_to_decide(slopes, n / design_effect, -math.log(alpha))
    return None if total is None else max(1, math.ceil(total * design_effect) - n)


def _psi(lam: float) -> float:
    return -math.log1p(-lam) - lam


def _scaled(total: float, squares: float, n: float, low: float, high: float) -> tuple[float, float]:
    """Sum and sum of squares of the values rescaled from [low, high] to [0, 1]."""
    span = high - low
    s = (total - n * low) / span
    q = (squares - 2 * low * total + n * low * low) / (span * span)
    # Guard against sums that are not a valid sample (e.g. partly written): Σy² >= (Σy)²/n.
    return s, max(q, s * s / n)


def mean_evidence(s: float, q: float, n: float, m: float, *, above: bool) -> float:
    """Log evidence against ``mean <= m`` (``above``) or ``mean >= m``, values in [0, 1].

    ``s``, ``q``: sum and sum of squares of the ``n`` values; ``0 <= m <= 1``.
    """
    sign = 1.0 if above else -1.0
    xi = sign * (s - n * m)
    xi2 = q - 2 * m * s + n * m * m
    return _log_mix([(math.log(w), lam * xi - _psi(lam) * xi2) for lam, w in BETS])


def mean_bounds(
    total: float,
    squares: float,
    n: int,
    alpha: float,
    low: float,
    high: float,
    design_effect: float = 1.0,
) -> tuple[float, float]:
    """Anytime-valid (lower, upper) bounds on the mean of ``n`` values in [``low``, ``high``].

    Each side is wrong with probability at most ``alpha``; (low, high) without values.
    """
    if n <= 0:
        return low, high
    d = design_effect
    s, q = _scaled(total / d, squares / d, n / d, low, high)
    k, mean = n / d, s / (n / d)
    target = -math.log(alpha)

    def over(m: float) -> float:
        return mean_evidence(s, q, k, m, above=True) - target

    def under(m: float) -> float:
        return mean_evidence(s, q, k, m, above=False) - target

    lower = _crossing(over, mean, 0.0) if over(0.0) >= 0 else 0.0
    upper = _crossing(under, mean, 1.0) if under(1.0) >= 0 else 1.0
    span = high - low
    return low + lower * span, low + upper * span


def mean_needed(
    total: float,
    squares: float,
    n: int,
    level: float,
    alpha: float,
    low: float,
    high: float,
    design_effect: float = 1.0,
) -> int | None:
    """More values until the mean is shown above or below ``level``, if mean and spread held."""
    if n <= 0 or not low < level < high:
        return None
    d = design_effect
    s, q = _scaled(total / d, squares / d, n / d, low, high)
    k = n / d
    m = (level - low) / (high - low)
    mean, meansq = s / k, q / k
    if mean == m:
        return None
    sign = 1.0 if mean > m else -1.0
    xi, xi2 = sign * (mean - m), meansq - 2 * m * mean + m * m
    slopes = [(w, lam * xi - _psi(lam) * xi2) for lam, w in BETS]
    total_n = samples_to_decide(slopes, k, -math.log(alpha))
    return None if total_n is None else max(1, math.ceil(total_n * d) - n)
