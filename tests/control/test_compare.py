"""End-of-test comparisons: textbook values, brute-force ranks, and seeded A/A calibration."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from config.metrics import BUCKET_BOUNDS_MS, LATENCY_BUCKETS, TrackWindow, bucket_index_ms
from control.analysis.compare import (
    compare,
    holm_adjust,
    latency,
    mann_whitney,
    mean_rating,
    two_proportions,
)
from control.analysis.distributions import (
    normal_cdf,
    normal_quantile,
    student_t_quantile,
    student_t_two_sided_p,
)


def window(
    requests: int = 0,
    errors: int = 0,
    latencies: dict[float, int] | None = None,
    **feedback: int,
) -> TrackWindow:
    w = TrackWindow(requests=requests)
    w.errors["upstream_5xx"] = errors
    for ms, count in (latencies or {}).items():
        w.latency[bucket_index_ms(ms)] += count
    w.feedback = dict(feedback)
    return w


def histogram(latencies: dict[float, int]) -> list[int]:
    return window(latencies=latencies).latency


def ratings(values: Sequence[int]) -> tuple[int, int, int]:
    return sum(values), sum(v * v for v in values), len(values)


def rated(values: Sequence[int]) -> TrackWindow:
    total, squares, n = ratings(values)
    return window(rating_sum=total, rating_sq=squares, rating_n=n)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact binomial draws in O(events): geometric gaps between successive events."""
    events, position, log_q = 0, 0, math.log1p(-p)
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return events
        events += 1


# Distribution functions.


@pytest.mark.parametrize(
    ("p", "z"),
    [
        (0.5, 0.0),
        (0.975, 1.959963984540054),
        (0.995, 2.5758293035489004),
        (0.025, -1.959963984540054),
        (0.999, 3.090232306167813),
        (1e-10, -6.361340902404056),
    ],
)
def test_normal_quantile_known_values(p: float, z: float) -> None:
    assert normal_quantile(p) == pytest.approx(z, abs=1e-12)


def test_normal_quantile_inverts_the_cdf_in_every_region() -> None:
    for p in (1e-300, 1e-20, 1e-5, 0.001, 0.02, 0.02425, 0.03, 0.2, 0.4999, 0.6, 0.9, 1 - 1e-9):
        assert normal_cdf(normal_quantile(p)) == pytest.approx(p, rel=1e-12)
    with pytest.raises(ValueError):
        normal_quantile(1.0)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.0, 7.5, 300.0])
def test_student_t_tails_match_the_closed_forms_at_one_and_two_df(t: float) -> None:
    assert student_t_two_sided_p(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-12)
    assert student_t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)


@pytest.mark.parametrize(
    ("p", "df", "t"),
    [
        (0.975, 10, 2.228138851986274),  # table: 2.228
        (0.975, 1, 12.706204736174694),  # table: 12.706
        (0.995, 30, 2.7499956535672254),  # table: 2.750
        (0.95, 5, 2.0150483733330233),  # table: 2.015
        (0.975, 1e7, 1.959964221767205),  # 2.4e-7 above the normal's 1.959964
    ],
)
def test_student_t_quantile_known_values(p: float, df: float, t: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(t, rel=1e-8)


def test_student_t_quantile_inverts_the_tail_from_one_to_a_hundred_million_df() -> None:
    for df in (1, 1.5, 3, 9.64, 30, 250, 1e4, 1e6, 1e8):
        for p in (0.5, 0.6, 0.9, 0.975, 0.995, 0.9999995):
            t = student_t_quantile(p, df)
            assert student_t_two_sided_p(t, df) == pytest.approx(2 * (1 - p), rel=1e-8)


# Two proportions.


def test_two_proportion_z_test_and_newcombe_interval_match_the_textbook() -> None:
    # Newcombe (1998), Stat. Med. 17:873, table II, example (a): 56/70 − 48/80.
    result = two_proportions("hallucination_rate", 48, 80, 56, 70, 0.95, min_n=1)
    pooled = (48 + 56) / (80 + 70)
    z = (56 / 70 - 48 / 80) / math.sqrt(pooled * (1 - pooled) * (1 / 80 + 1 / 70))
    assert result.p_value == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert result.p_value == pytest.approx(0.00805, abs=1e-5)
    assert result.difference == pytest.approx(0.2)
    assert result.interval == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert result.verdict == "b_worse"


@pytest.mark.parametrize(
    ("events_a", "n_a", "events_b", "n_b", "interval"),
    [
        (3, 10, 9, 10, (0.1705, 0.8090)),  # Newcombe table II (b)
        (0, 20, 0, 10, (-0.1611, 0.2775)),  # (h): no events, yet an interval of honest width
    ],
)
def test_newcombe_interval_at_small_counts(
    events_a: int, n_a: int, events_b: int, n_b: int, interval: tuple[float, float]
) -> None:
    result = two_proportions("error_rate", events_a, n_a, events_b, n_b, 0.95, min_n=1)
    assert result.interval == pytest.approx(interval, abs=5e-5)


def test_one_against_three_percent_errors_at_10000_each() -> None:
    baseline, worse = window(10_000, 100), window(10_000, 300)
    [result] = compare(baseline, worse, ["error_rate"], 0.95)
    assert result.verdict == "b_worse"
    assert result.samples == (10_000, 10_000)
    assert result.p_value is not None and result.p_value < 1e-12
    assert result.interval is not None and 0.015 < result.interval[0] < 0.02 < result.interval[1]
    assert result.summary.startswith(
        "error_rate: a 1.00% (n=10000) vs b 3.00% (n=10000), b worse, p="
    )
    assert "95% CI [+1." in result.summary
    [mirror] = compare(worse, baseline, ["error_rate"], 0.95)
    assert mirror.verdict == "b_better"


def test_equal_rates_differ_in_about_one_minus_confidence_of_draws() -> None:
    rng = random.Random(20240601)
    draws = 2000
    positives = 0
    for _ in range(draws):
        a, b = binomial(rng, 2000, 0.05), binomial(rng, 2000, 0.05)
        positives += two_proportions("error_rate", a, 2000, b, 2000, 0.95).verdict != (
            "no_difference"
        )
    assert 0.025 <= positives / draws <= 0.08


def test_too_few_requests_or_none_at_all_is_insufficient_data() -> None:
    thin = two_proportions("error_rate", 5, 99, 1, 1000, 0.95)
    assert (thin.verdict, thin.p_value, thin.interval) == ("insufficient_data", None, None)
    assert thin.a_value == pytest.approx(5 / 99)
    idle = compare(TrackWindow(), window(1000, 5), ["error_rate", "hallucination_rate"], 0.95)
    assert [r.verdict for r in idle] == ["insufficient_data"] * 2
    assert idle[0].a_value is None
    assert "insufficient data" in idle[0].summary


def test_no_events_in_either_arm_is_no_difference_once_the_sample_suffices() -> None:
    result = two_proportions("error_rate", 0, 500, 0, 800, 0.95)
    assert (result.verdict, result.p_value, result.difference) == ("no_difference", 1.0, 0.0)
    assert result.interval is not None and result.interval[0] < 0 < result.interval[1]


def test_more_events_than_requests_is_refused() -> None:
    with pytest.raises(ValueError):
        two_proportions("error_rate", 101, 100, 0, 100, 0.95)


# Latency.


def brute_force_mann_whitney(
    a_counts: Sequence[int], b_counts: Sequence[int]
) -> tuple[float, float, float]:
    """U − n_a·n_b/2, σ and the two-sided p on the expanded samples, ranked one by one."""
    a = [bucket for bucket, c in enumerate(a_counts) for _ in range(c)]
    b = [bucket for bucket, c in enumerate(b_counts) for _ in range(c)]
    ordered = sorted(a + b)
    positions: dict[int, list[int]] = {}
    for rank, value in enumerate(ordered, start=1):
        positions.setdefault(value, []).append(rank)
    midrank = {value: sum(ranks) / len(ranks) for value, ranks in positions.items()}
    u = sum(midrank[value] for value in b) - len(b) * (len(b) + 1) / 2
    pairs = sum((y > x) + 0.5 * (y == x) for x in a for y in b)
    assert u == pairs  # two definitions of U agree before the test trusts either
    n = len(ordered)
    ties = sum(t**3 - t for t in Counter(ordered).values())
    sigma = math.sqrt(len(a) * len(b) / 12 * ((n + 1) - ties / (n * (n - 1))))
    excess = u - len(a) * len(b) / 2
    p = math.erfc(max(abs(excess) - 0.5, 0) / sigma / math.sqrt(2)) if sigma else 1.0
    return excess, sigma, p


@pytest.mark.parametrize("seed", range(8))
def test_mann_whitney_from_bins_equals_ranks_on_the_expanded_samples(seed: int) -> None:
    rng = random.Random(seed)
    a_counts = [rng.randrange(0, 7) for _ in range(6)] + [0] * (LATENCY_BUCKETS - 6)
    b_counts = [rng.randrange(0, 7) for _ in range(6)] + [0] * (LATENCY_BUCKETS - 6)
    b_counts[0] += 1  # never an empty arm
    a_counts[5] += 1
    excess, sigma, p = brute_force_mann_whitney(a_counts, b_counts)
    assert mann_whitney(a_counts, b_counts) == pytest.approx((excess, sigma), rel=1e-12)
    result = latency(a_counts, b_counts, 0.95, min_n=1)
    assert result.p_value == pytest.approx(p, rel=1e-12)


def test_a_slower_b_is_worse_even_with_the_same_p95_bucket() -> None:
    a = window(latencies={100: 900, 1000: 100})
    b = window(latencies={200: 900, 1000: 100})
    p95, p50 = compare(a, b, ["latency_p95", "latency_p50"], 0.95)
    assert (p95.a_value, p95.b_value, p95.difference) == (1024.0, 1024.0, 0.0)
    assert p95.verdict == "b_worse"
    assert p95.interval is None
    assert p50.a_value == BUCKET_BOUNDS_MS[bucket_index_ms(100)]
    assert p50.b_value == BUCKET_BOUNDS_MS[bucket_index_ms(200)]
    assert compare(b, a, ["latency_p99"], 0.95)[0].verdict == "b_better"


def test_identical_histograms_and_all_tied_samples_are_no_difference() -> None:
    same = window(latencies={100: 300, 800: 40})
    assert compare(same, same, ["latency_p95"], 0.95)[0].p_value == pytest.approx(1.0)
    tied = latency(histogram({100: 300}), histogram({100: 500}), 0.95)
    assert (tied.verdict, tied.p_value) == ("no_difference", 1.0)


def test_latency_needs_a_minimum_sample_and_one_bucket_layout() -> None:
    thin = latency(histogram({100: 99}), histogram({200: 500}), 0.95)
    assert thin.verdict == "insufficient_data"
    with pytest.raises(ValueError):
        latency([1, 2], [1, 2, 3], 0.95)


def test_ttfb_quantiles_use_the_ttfb_histogram() -> None:
    a, b = TrackWindow(), TrackWindow()
    a.ttfb[bucket_index_ms(50)] = 500
    b.ttfb[bucket_index_ms(400)] = 500
    [result] = compare(a, b, ["ttfb_p95"], 0.95)
    assert result.verdict == "b_worse" and result.samples == (500, 500)


def test_equal_latency_distributions_differ_in_about_one_minus_confidence_of_draws() -> None:
    rng = random.Random(7)
    buckets = [bucket_index_ms(ms) for ms in (80, 120, 200, 350, 600, 1500)]
    weights = [30, 25, 20, 12, 8, 5]
    draws = 2000
    positives = 0
    for _ in range(draws):
        a, b = [0] * LATENCY_BUCKETS, [0] * LATENCY_BUCKETS
        for counts in (a, b):
            for bucket in rng.choices(buckets, weights, k=200):
                counts[bucket] += 1
        positives += latency(a, b, 0.95).verdict != "no_difference"
    assert 0.025 <= positives / draws <= 0.08


# Ratings.


def test_welch_t_test_on_a_textbook_example() -> None:
    a, b = [4, 5, 3, 4, 4, 5, 2, 4], [5, 5, 4, 5, 5, 4, 5, 5, 5, 4]
    result = mean_rating(*ratings(a), *ratings(b), 0.95, min_n=2)
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    var_a = sum((x - mean_a) ** 2 for x in a) / (len(a) - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (len(b) - 1)
    se = math.sqrt(var_a / len(a) + var_b / len(b))
    df = se**4 / ((var_a / len(a)) ** 2 / (len(a) - 1) + (var_b / len(b)) ** 2 / (len(b) - 1))
    assert result.difference == pytest.approx(mean_b - mean_a)
    assert result.p_value == pytest.approx(student_t_two_sided_p((mean_b - mean_a) / se, df))
    half = student_t_quantile(0.975, df) * se
    assert result.interval == pytest.approx((mean_b - mean_a - half, mean_b - mean_a + half))
    # scipy.stats.ttest_ind(b, a, equal_var=False) on the same data: t 2.15838, df 9.64279,
    # p 0.057248, 95 % interval (−0.030962, 1.680962).
    assert (mean_b - mean_a) / se == pytest.approx(2.15838, abs=1e-5)
    assert df == pytest.approx(9.64279, abs=1e-5)
    assert result.p_value == pytest.approx(0.057248, abs=1e-6)
    assert result.interval == pytest.approx((-0.030962, 1.680962), abs=1e-6)
    # At 9.6 df the normal would have called it (p 0.031): Student's t does not.
    assert result.verdict == "no_difference"
    assert math.erfc((mean_b - mean_a) / se / math.sqrt(2)) < 0.05


def test_user_satisfaction_higher_is_better() -> None:
    happier, sadder = rated([5, 4] * 100), rated([3, 4] * 100)
    assert compare(sadder, happier, ["user_satisfaction"], 0.95)[0].verdict == "b_better"
    [worse] = compare(happier, sadder, ["user_satisfaction"], 0.95)
    assert worse.verdict == "b_worse"
    assert worse.difference == pytest.approx(-1.0)
    assert worse.summary.startswith("user_satisfaction: a 4.50 (n=200) vs b 3.50 (n=200), b worse")


def test_ratings_below_the_minimum_or_without_squares_are_insufficient_data() -> None:
    few = mean_rating(*ratings([5] * 29), *ratings([1] * 40), 0.95)
    assert few.verdict == "insufficient_data"
    unsquared = mean_rating(400, 0, 100, 300, 0, 100, 0.95)  # windows older than rating_sq
    assert (unsquared.verdict, unsquared.difference) == ("insufficient_data", -1.0)


def test_ratings_all_alike_in_each_arm() -> None:
    equal = mean_rating(*ratings([4] * 50), *ratings([4] * 60), 0.95)
    assert (equal.verdict, equal.p_value) == ("no_difference", 1.0)
    apart = mean_rating(*ratings([4] * 50), *ratings([5] * 60), 0.95)
    assert (apart.verdict, apart.p_value) == ("b_better", 0.0)


def test_equal_rating_distributions_differ_in_about_one_minus_confidence_of_draws() -> None:
    rng = random.Random(11)
    draws = 2000
    positives = 0
    for _ in range(draws):
        a = rng.choices([1, 2, 3, 4, 5], [5, 5, 15, 35, 40], k=rng.randrange(30, 80))
        b = rng.choices([1, 2, 3, 4, 5], [5, 5, 15, 35, 40], k=rng.randrange(30, 80))
        positives += mean_rating(*ratings(a), *ratings(b), 0.95).verdict != "no_difference"
    assert 0.025 <= positives / draws <= 0.08


# Several metrics.


def test_holm_adjustment_on_a_known_example() -> None:
    # Sorted: 0.005×4 = 0.02, 0.01×3 = 0.03, 0.03×2 = 0.06, 0.04×1 → 0.06 (kept monotone).
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0]
    assert holm_adjust([]) == []


def test_holm_withdraws_marginal_differences_and_skips_untested_metrics() -> None:
    # 100 vs 130 errors (and hallucinations) of 10,000: p = 0.047 each, marginal on its own.
    a = window(10_000, 100, {100: 10_000}, hallucination_yes=100, hallucination_no=9_900)
    b = window(10_000, 130, {200: 10_000}, hallucination_yes=130, hallucination_no=9_870)
    metrics = ["error_rate", "hallucination_rate", "latency_p95", "user_satisfaction"]
    raw = compare(a, b, metrics, 0.95)
    assert [r.verdict for r in raw] == ["b_worse", "b_worse", "b_worse", "insufficient_data"]
    p_error, p_latency = raw[0].p_value, raw[2].p_value
    assert p_error is not None and p_latency is not None
    assert p_error == pytest.approx(0.047, abs=1e-3)
    adjusted = compare(a, b, metrics, 0.95, holm=True)
    assert [r.verdict for r in adjusted] == [
        "no_difference",
        "no_difference",
        "b_worse",
        "insufficient_data",
    ]
    # A family of three: the smallest p-value times 3, the next two times 2 (and at least that).
    assert adjusted[2].p_value == pytest.approx(3 * p_latency)
    assert adjusted[0].p_value == adjusted[1].p_value == pytest.approx(2 * p_error)
    assert adjusted[0].holm_adjusted and not adjusted[3].holm_adjusted
    assert "(Holm)" in adjusted[0].summary and "no difference" in adjusted[0].summary
    assert adjusted[0].interval == raw[0].interval


def test_unknown_metric_and_bad_confidence_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        compare(TrackWindow(), TrackWindow(), ["latency_p90"], 0.95)
    with pytest.raises(ValueError, match="confidence"):
        compare(window(1000), window(1000), ["error_rate"], 95)
