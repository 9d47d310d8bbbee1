"""Anytime-valid bounds on the mean of nonnegative, unbounded values: tokens or cost per request.

The windows hold, per track, the count ``n`` of requests that reported usage, the sums of
prompt and completion tokens, and their second moments (``prompt²``, ``completion²``,
``prompt × completion``); so the sum and the sum of squares of any priced mix
``a·prompt + b·completion`` are known exactly (``Sums``).

The bounds use the empirical-Bernstein supermartingale of ``bounds`` (Fan et al. 2015:
``exp(λξ − ψ(λ)ξ²) <= 1 + λξ`` for ``ξ >= −1``), with ``ξ = ±(x − m)/c`` for a scale ``c``:

- against ``mean <= m`` (a *lower* bound), ``ξ = (x − m)/c >= −1`` as soon as ``c >= m``,
  because ``x >= 0``: no upper limit on the values is needed, so a rollback on "more tokens
  than" rests on no assumption beyond independence;
- against ``mean >= m`` (an *upper* bound), ``ξ = (m − x)/c >= −1`` needs ``x <= m + c``: a
  cap on one request's value, ``max_tokens_per_request`` (the model's context window) for
  tokens, times the dearer token price for cost. Showing "fewer than" is slower with a larger
  cap, as it must be: a mean of unbounded counts has no upper confidence bound at all.

Each hypothesis mixes the betting fractions of ``bounds.BETS`` over the scales
``cap·4^−k`` that are large enough, with fixed weights (a mixture of supermartingales is
one). Fewer scales qualify as ``m`` moves away from the side it is tested on, so the evidence
stays monotone in ``m`` where the bisection searches it. ``design_effect`` divides the sums,
as in ``bounds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from control.analysis.bounds import BETS, samples_to_decide

BETS_BELOW = tuple((lam, 1 / 8) for lam in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9))
"""Betting fractions against ``mean >= m``. There ``c >= cap − m`` is large against the spread,
so fractions up to 0.9 keep the evidence monotone in ``m`` and about double its growth
(it is bounded by ``λ·n·(m − mean)/c``: the price of the cap)."""
SCALES = tuple(4.0**-k for k in range(8))
"""Scales of ``ξ``, as fractions of the cap, each with weight 1/8."""
_LOG_WEIGHT = -math.log(len(SCALES))


@dataclass(frozen=True)
class Sums:
    """``n`` values, their sum and sum of squares, and the most one value can be."""

    total: float
    squares: float
    n: int
    cap: float

    @property
    def mean(self) -> float:
        return self.total / self.n

    def spread_known(self) -> bool:
        """Squares are consistent with the sum (windows written before squares were counted,
        or partly written ones, are not: their spread is unknown)."""
        return self.n > 0 and self.squares * self.n >= self.total**2 * (1 - 1e-9)


def _psi(lam: float) -> float:
    return -math.log1p(-lam) - lam


def _log_sum(terms: Sequence[float]) -> float:
    if not terms:
        return -math.inf
    top = max(terms)
    return top + math.log(sum(math.exp(x - top) for x in terms))


def _components(s: Sums, m: float, above: bool) -> list[tuple[float, float, float]]:
    """(log weight, λ, c) of the supermartingales that are valid against ``m``."""
    room = m if above else s.cap - m
    out: list[tuple[float, float, float]] = []
    for fraction in SCALES:
        c = fraction * s.cap
        if c >= room and c > 0:
            bets = BETS if above else BETS_BELOW
            out.extend((_LOG_WEIGHT + math.log(w), lam, c) for lam, w in bets)
    return out


def evidence(s: Sums, m: float, *, above: bool, design_effect: float = 1.0) -> float:
    """Log evidence against ``mean <= m`` (``above``) or ``mean >= m``; ``0 < m < cap``."""
    d = design_effect
    n, total, squares = s.n / d, s.total / d, s.squares / d
    dev = (total - n * m) if above else (n * m - total)
    sq = max(0.0, squares - 2 * m * total + n * m * m)
    return _log_sum(
        [lw + lam * dev / c - _psi(lam) * sq / (c * c) for lw, lam, c in _components(s, m, above)]
    )


def shows(s: Sums, m: float, alpha: float, *, above: bool, design_effect: float = 1.0) -> bool:
    """The mean is shown above (``above``) or below ``m``, wrong with probability <= alpha
    over every look. Never without values or with an unknown spread."""
    if s.n <= 0 or not s.spread_known():
        return False
    if m <= 0:
        return above and s.total > 0
    if m >= s.cap:
        return not above and s.total < s.n * s.cap
    return evidence(s, m, above=above, design_effect=design_effect) >= -math.log(alpha)


def lower(s: Sums, alpha: float, design_effect: float = 1.0) -> float:
    """The largest ``m`` shown below the mean (0 when none is)."""
    if not shows(s, 0.0, alpha, above=True) or s.mean <= 0:
        return 0.0
    low, high = 0.0, s.mean
    for _ in range(50):
        mid = (low + high) / 2
        if shows(s, mid, alpha, above=True, design_effect=design_effect):
            low = mid
        else:
            high = mid
    return low


def upper(s: Sums, alpha: float, design_effect: float = 1.0) -> float:
    """The smallest ``m`` shown above the mean (the cap when none is)."""
    if s.n <= 0 or not s.spread_known():
        return s.cap
    low, high = min(s.mean, s.cap), s.cap
    for _ in range(50):
        mid = (low + high) / 2
        if shows(s, mid, alpha, above=False, design_effect=design_effect):
            high = mid
        else:
            low = mid
    return high


def needed(s: Sums, m: float, alpha: float, design_effect: float = 1.0) -> int | None:
    """More values until the mean is shown on its observed side of ``m``, if mean and spread
    held; ``None`` at ``m`` itself, with an unknown spread, or out of reach."""
    if s.n <= 0 or not s.spread_known() or not 0 < m < s.cap or s.mean == m:
        return None
    above = s.mean > m
    mean, meansq = s.mean, s.squares / s.n
    dev = (mean - m) if above else (m - mean)
    sq = max(0.0, meansq - 2 * m * mean + m * m)
    slopes = [
        (math.exp(lw), lam * dev / c - _psi(lam) * sq / (c * c))
        for lw, lam, c in _components(s, m, above)
    ]
    d = design_effect
    total = samples_to_decide(slopes, s.n / d, -math.log(alpha))
    return None if total is None else max(1, math.ceil(total * d) - s.n)
