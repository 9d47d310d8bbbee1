"""The distributions the A/B report's tests need, written out so the control plane needs no
numerical library: the normal's CDF and quantile (Acklam's rational approximation, refined),
and Student's t through the regularised incomplete beta function (a continued fraction)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def two_sided_normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


# Acklam's coefficients, highest power first.
# fmt: off
_A = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
      -30.66479806614716, 2.506628277459239)
_B = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
      -13.28068155288572)
_C = (-7.784894002430293e-03, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
      4.374664141464968, 2.938163982698783)
_D = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
# fmt: on


def normal_quantile(p: float) -> float:
    """The inverse normal CDF: Acklam's rational approximation (relative error 1.2e-9), then
    one Halley step on ``erfc``, which brings it to about machine precision."""
    if not 0 < p < 1:
        raise ValueError(f"a normal quantile needs 0 < p < 1, not {p}")
    if p > 0.5:
        return -normal_quantile(1 - p)  # exact in floating point, and the lower tail keeps digits
    if p < 0.02425:
        q = math.sqrt(-2 * math.log(p))
        x = _poly(_C, q) / (_poly(_D, q) * q + 1)
    else:
        q = p - 0.5
        r = q * q
        x = _poly(_A, r) * q / (_poly(_B, r) * r + 1)
    error = normal_cdf(x) - p
    u = error * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def _poly(coefficients: Sequence[float], x: float) -> float:
    """Horner's rule, highest power first."""
    total = 0.0
    for c in coefficients:
        total = total * x + c
    return total


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` (any positive real) degrees of freedom."""
    return _incomplete_beta(df / 2, 0.5, df / (df + t * t), t * t / (df + t * t))


def student_t_quantile(p: float, df: float) -> float:
    """The t value with CDF ``p`` (0.5 ≤ p < 1), by Numerical Recipes' ``rtsafe``: Newton's
    method from the normal quantile, bisecting whenever a step would leave the bracket or
    fails to halve, so it ends even where the tail is computed only to 1e-9 (df in millions)."""
    if not 0.5 <= p < 1:
        raise ValueError(f"student_t_quantile covers 0.5 <= p < 1, not {p}")
    tail = 2 * (1 - p)
    low, high = 0.0, max(normal_quantile(p), 1.0)
    while student_t_two_sided_p(high, df) > tail:
        low, high = high, 2 * high
    log_scale = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - math.log(df * math.pi) / 2
    t = min(max(normal_quantile(p), low), high)  # t's quantile is at least the normal's
    before = step = high - low
    for _ in range(500):
        excess = student_t_two_sided_p(t, df) - tail
        if excess == 0:
            return t
        if excess > 0:
            low = t
        else:
            high = t
        move = excess / (2 * math.exp(log_scale - (df + 1) / 2 * math.log1p(t * t / df)))
        if low < t + move < high and abs(move) < before / 2:
            before, step = step, abs(move)
            t += move
        else:
            before, step = step, (high - low) / 2
            t = low + step
        if step <= 1e-12 * t:
            return t
    raise ArithmeticError(f"no t quantile found for p={p}, df={df}")


def _incomplete_beta(a: float, b: float, x: float, y: float) -> float:
    """The regularized incomplete beta function I_x(a, b), Numerical Recipes' ``betai``: the
    continued fraction on whichever side of the mean it converges fast. ``y`` is ``1 − x``,
    computed by the caller without cancellation (near x = 1, ``1 - x`` keeps no digits)."""
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_front = -_log_beta(a, b)
    log_front += a * (math.log1p(-y) if y < 0.5 else math.log(x))
    log_front += b * (math.log1p(-x) if x < 0.5 else math.log(y))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _log_beta(a: float, b: float) -> float:
    """ln B(a, b). For a large argument, ``lgamma(big + small) − lgamma(big)`` would cancel
    (at df 10⁷ it kept only 9 digits), so that difference comes from Stirling's series."""
    big, small = max(a, b), min(a, b)
    if big < 20:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    shift = (big - 0.5) * math.log1p(small / big) + small * math.log(big + small) - small
    return math.lgamma(small) - shift - _stirling_tail(big + small) + _stirling_tail(big)


def _stirling_tail(z: float) -> float:
    """``lgamma(z) − ((z − ½)·ln z − z + ½·ln 2π)``, to 1e-15 for z ≥ 20."""
    w = 1 / (z * z)
    return (1 / 12 - w * (1 / 360 - w * (1 / 1260 - w / 1680))) / z


_TINY = 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method."""
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 100_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > _TINY else _TINY)
            c = 1 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            return h
    raise ArithmeticError(f"the incomplete beta fraction did not converge (a={a}, b={b}, x={x})")
