"""The rollback test's decision quality, proved by seeded simulation over the real code."""

from __future__ import annotations

import statistics
from dataclasses import asdict

import pytest

from control.analysis.sequential import Interval, RateTest
from control.analysis.simulate import rollback_rate


def test_a_healthy_candidate_is_rarely_rolled_back_despite_80_looks() -> None:
    rate, _ = rollback_rate(1000, seed=20261128, baseline_rate=0.01, candidate_rate=0.01)
    assert rate < 0.01


def test_three_times_the_errors_at_5_percent_is_caught_before_1000_requests() -> None:
    _, outcomes = rollback_rate(
        1000, seed=7, baseline_rate=0.01, candidate_rate=0.03, schedule=((0.05, 40),)
    )
    caught_early = sum(o.rolled_back and o.candidate_requests < 1000 for o in outcomes)
    assert caught_early / len(outcomes) >= 0.95
    assert statistics.median(o.candidate_requests for o in outcomes if o.rolled_back) < 1000


def test_a_candidate_failing_20_percent_is_caught_at_the_first_judged_look() -> None:
    _, outcomes = rollback_rate(
        400, seed=11, baseline_rate=0.01, candidate_rate=0.20, min_requests=100
    )
    # 75 candidate requests a look: the minimum sample is met at look 2.
    assert all(o.rolled_back and o.look == 2 for o in outcomes)


def test_no_verdict_below_the_minimum_sample_or_without_events() -> None:
    test = RateTest()
    test.add(Interval(50, 25, 950, 0))
    assert test.verdict(min_requests=100) == "inconclusive"
    idle = RateTest()
    idle.add(Interval(0, 0, 1000, 10))
    idle.add(Interval(500, 0, 500, 0))
    assert idle.fail_evidence() == 1.0


def test_an_equal_candidate_eventually_passes() -> None:
    test = RateTest()
    for _ in range(60):
        test.add(Interval(500, 5, 500, 5))
    assert test.verdict(min_requests=100) == "pass"


def test_a_design_effect_tempers_the_evidence() -> None:
    plain, clustered = RateTest(), RateTest(design_effect=4.0)
    for test in (plain, clustered):
        for _ in range(5):
            test.add(Interval(100, 6, 900, 9))
    assert plain.failed()
    assert not clustered.failed()
    # Each component's log likelihood ratio is divided by the design effect.
    assert clustered.fail_log_lr == pytest.approx([x / 4 for x in plain.fail_log_lr])


def test_a_test_stored_before_the_design_effect_existed_loads() -> None:
    stored = asdict(RateTest(alpha=0.002))
    del stored["design_effect"]
    test = RateTest.restore(stored)
    assert (test.alpha, test.design_effect) == (0.002, 1.0)
    test.add(Interval(100, 6, 900, 9))
    assert stored["fail_log_lr"] == [0.0]  # the stored state is not changed by the test
