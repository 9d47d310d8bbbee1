"""Anytime-valid bounds: the rule of three, monotonicity, and coverage under repeated looks."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.analysis.bounds import (
    mean_bounds,
    mean_needed,
    rate_lower,
    rate_needed,
    rate_upper,
    samples_to_decide,
    shows_above,
    shows_below,
)


def first_pass_without_events(level: float, alpha: float) -> int:
    n = 1
    while not shows_below(0, n, level, alpha):
        n += 1
    return n


@pytest.mark.parametrize(
    ("level", "alpha"), [(0.01, 0.05), (0.02, 0.05), (0.05, 0.05), (0.01, 0.01)]
)
def test_zero_events_pass_within_a_third_of_the_rule_of_three(level: float, alpha: float) -> None:
    rule = math.log(alpha) / math.log(1 - level)  # (1 - t)^n < alpha: 298 for 1 % at 95 %
    n = first_pass_without_events(level, alpha)
    assert rule <= n <= 1.3 * rule
    assert first_pass_without_events(0.01, 0.05) < 1_000  # the old minimum sample was 1,072


@pytest.mark.parametrize(
    ("k", "n", "alpha", "low", "high"),
    [
        (0, 300, 0.05, 0.0, 0.0125),
        (4, 412, 0.05, 0.001, 0.035),
        (80, 1000, 0.05, 0.05, 0.115),
        (0, 1, 0.05, 0.0, 0.999),
        (1, 2, 0.05, 0.0, 1.0),
    ],
)
def test_bounds_bracket_the_observed_rate(
    k: int, n: int, alpha: float, low: float, high: float
) -> None:
    lower, upper = rate_lower(k, n, alpha), rate_upper(k, n, alpha)
    assert low <= lower <= k / n <= upper <= high
    # Wider than the single-look exact bound for zero events (1 - alpha^(1/n)).
    if k == 0:
        assert upper >= 1 - alpha ** (1 / n)


def test_no_trials_say_nothing() -> None:
    assert (rate_lower(0, 0, 0.05), rate_upper(0, 0, 0.05)) == (0.0, 1.0)
    assert not shows_below(0, 0, 0.5, 0.05) and not shows_above(0, 0, 0.5, 0.05)
    assert rate_needed(0, 0, 0.01, 0.05) is None
    assert mean_bounds(0, 0, 0, 0.05, 1, 5) == (1, 5)


counts = st.integers(min_value=1, max_value=5_000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


@given(counts, st.integers(min_value=1, max_value=2_000))
def test_more_trials_with_the_same_events_lower_both_bounds(kn: tuple[int, int], more: int) -> None:
    k, n = kn
    assert rate_upper(k, n + more, 0.05) <= rate_upper(k, n, 0.05) + 1e-9
    assert rate_lower(k, n + more, 0.05) <= rate_lower(k, n, 0.05) + 1e-9


@given(counts)
def test_bounds_agree_with_the_decisions(kn: tuple[int, int]) -> None:
    k, n = kn
    upper, lower = rate_upper(k, n, 0.05), rate_lower(k, n, 0.05)
    if upper < 0.999:
        assert shows_below(k, n, upper * 1.001, 0.05)
        assert not shows_below(k, n, upper * 0.999, 0.05)
    if lower > 1e-9:
        assert shows_above(k, n, lower * 0.999, 0.05)
        assert not shows_above(k, n, lower * 1.001, 0.05)


@given(counts, st.sampled_from([1.5, 2.0, 6.0]))
def test_a_design_effect_widens_the_bounds(kn: tuple[int, int], d: float) -> None:
    k, n = kn
    assert rate_upper(k, n, 0.05, d) >= rate_upper(k, n, 0.05) - 1e-9
    assert rate_lower(k, n, 0.05, d) <= rate_lower(k, n, 0.05) + 1e-9


@pytest.mark.parametrize(("rate", "side"), [(0.02, "upper"), (0.02, "lower"), (0.2, "lower")])
def test_looking_every_ten_requests_stays_within_alpha(rate: float, side: str) -> None:
    """Coverage over 400 seeded sequences of 3,000 requests, checked after every 10: the bound
    is ever on the wrong side of the true rate in at most alpha (5 %) of them, with room for
    the simulation's own noise (the count is binomial: 5 % of 400 is 20 ± 4.4)."""
    rng = random.Random(20261129)
    wrong = 0
    for _ in range(400):
        k = 0
        for n in range(1, 3_001):
            k += rng.random() < rate
            if n % 10 == 0:
                if side == "upper" and shows_below(k, n, rate, 0.05):
                    wrong += 1
                    break
                if side == "lower" and shows_above(k, n, rate, 0.05):
                    wrong += 1
                    break
    assert wrong <= 30


def test_needed_is_what_it_takes_at_the_observed_rate() -> None:
    more = rate_needed(0, 100, 0.01, 0.05)
    assert more is not None
    assert shows_below(0, 100 + more, 0.01, 0.05)
    assert not shows_below(0, 100 + more - 2, 0.01, 0.05)
    # 3 % against a 1 % ceiling: enough more requests at 3 % show it above.
    up = rate_needed(3, 100, 0.01, 0.05)
    assert up is not None
    total = 100 + up
    assert shows_above(round(0.03 * total) + 1, total, 0.01, 0.05)
    assert rate_needed(1, 100, 0.01, 0.05) is None  # at the threshold: never decided
    assert rate_needed(95, 10_000, 0.01, 0.05) is None  # 0.95 × the threshold: out of reach


def test_samples_to_decide() -> None:
    assert samples_to_decide([(1.0, -0.1), (1.0, 0.0)], 10, 3.0) is None
    assert samples_to_decide([(1.0, 0.1)], 10, 3.0) == 30
    assert samples_to_decide([(1.0, 0.1)], 50, 3.0) == 50  # already there


@pytest.mark.parametrize(
    ("total", "squares", "n", "lower_at_least", "upper_at_most"),
    [
        (450, 2_100, 100, 4.0, 4.95),  # mean 4.5, spread about 0.5
        (300, 1_000, 100, 2.5, 3.5),
        (42, 180, 10, 1.0, 5.0),  # ten ratings tell little
        (500, 2_500, 100, 4.5, 5.0),  # all fives: bets of at most half the range cap the evidence
    ],
)
def test_mean_bounds(
    total: int, squares: int, n: int, lower_at_least: float, upper_at_most: float
) -> None:
    lower, upper = mean_bounds(total, squares, n, 0.05, 1, 5)
    assert lower_at_least <= lower <= total / n <= upper <= upper_at_most


def test_mean_bounds_cover_the_true_mean_under_repeated_looks() -> None:
    rng = random.Random(7)
    ratings, weights = [1, 2, 3, 4, 5], [0.05, 0.05, 0.1, 0.3, 0.5]
    true = sum(r * w for r, w in zip(ratings, weights, strict=True))
    wrong = 0
    for _ in range(200):
        s = q = 0
        for n in range(1, 401):
            r = rng.choices(ratings, weights)[0]
            s, q = s + r, q + r * r
            if n % 20 == 0:
                lower, upper = mean_bounds(s, q, n, 0.05, 1, 5)
                if not lower <= true <= upper:
                    wrong += 1
                    break
    assert wrong <= 20  # two-sided: at most 10 % of 200, here far fewer


def test_mean_needed() -> None:
    more = mean_needed(42, 180, 10, 4.0, 0.05, 1, 5)
    assert more is not None and 50 < more < 1_000
    assert mean_needed(40, 160, 10, 4.0, 0.05, 1, 5) is None  # exactly at the threshold
    assert mean_needed(0, 0, 0, 4.0, 0.05, 1, 5) is None
