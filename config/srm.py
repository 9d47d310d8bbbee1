"""Sample-ratio mismatch: does each track's observed share of requests match its weight?

Pearson's chi-square over the tracks with a positive weight, and its p-value. A very small
p-value means the split is not what the weights say, which points at broken stickiness or
routing, not at the versions themselves. Requests are clustered by user (sticky routing), so
the counts are overdispersed; the alarm threshold is therefore strict (p < 0.001), and a
window that spans a weight change says so instead of judging.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

ALARM_P = 0.001
MIN_REQUESTS = 100


@dataclass(frozen=True)
class SampleRatio:
    requests: int
    chi_square: float | None
    p_value: float | None
    mismatch: bool
    expected_share: dict[str, float]
    observed_share: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "chi_square": self.chi_square,
            "p_value": self.p_value,
            "mismatch": self.mismatch,
            "expected_share": self.expected_share,
            "observed_share": self.observed_share,
        }


def sample_ratio(observed: Mapping[str, int], weights: Mapping[str, float]) -> SampleRatio:
    """Compare request counts per track with the weights (percentages adding up to 100)."""
    total = sum(observed.get(t, 0) for t in weights)
    expected = {t: w / 100 for t, w in weights.items()}
    shares = {t: (observed.get(t, 0) / total if total else 0.0) for t in weights}
    live = [t for t, w in weights.items() if w > 0]
    stray = sum(observed.get(t, 0) for t, w in weights.items() if w == 0)
    if total < MIN_REQUESTS or (len(live) < 2 and not stray):
        return SampleRatio(total, None, None, False, expected, shares)
    chi = sum((observed.get(t, 0) - total * expected[t]) ** 2 / (total * expected[t]) for t in live)
    if stray:  # requests on a zero-weight track cannot happen by chance
        return SampleRatio(total, None, 0.0, True, expected, shares)
    p = chi_square_survival(chi, len(live) - 1)
    return SampleRatio(total, round(chi, 4), p, p < ALARM_P, expected, shares)


def chi_square_survival(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom."""
    if x <= 0:
        return 1.0
    return _upper_gamma_regularized(dof / 2.0, x / 2.0)


def _upper_gamma_regularized(a: float, x: float) -> float:
    if x < a + 1.0:  # series for the lower function, then its complement
        term = total = 1.0 / a
        n = a
        for _ in range(500):
            n += 1.0
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - math.lgamma(a)))
    # Lentz's continued fraction for the upper function.
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 500):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - math.lgamma(a)) * h)
