"""One look's pure parts: which criteria a phase is judged on, and the look itself."""

from __future__ import annotations

import copy
from pathlib import Path

from config.metrics import TrackWindow
from config.plans import CanaryPlan, load_plan
from control.analysis.verdict import Verdict
from control.looks import Counts, criteria, fresh_tests, judge_phase, look

PLANS = Path(__file__).parents[2] / "config" / "examples" / "plans"


def shipped() -> CanaryPlan:
    plan = load_plan(PLANS / "canary.yaml")
    assert isinstance(plan, CanaryPlan)
    return plan


def test_each_criterion_once_and_required_when_any_mention_requires_it() -> None:
    listed = [(m, str(t), secondary) for m, t, secondary in criteria(shipped())]
    # The seed's plan names error_rate, latency_p95 and hallucination_rate twice: as canary
    # metrics and as success criteria. A success criterion is required, so hallucination_rate
    # is too, although its canary metric is secondary.
    assert listed == [
        ("error_rate", "< 1%", False),
        ("latency_p95", "< 2000ms", False),
        ("hallucination_rate", "< 5%", False),
        ("user_satisfaction", "> 4.0/5.0", True),
    ]


def test_a_required_criterion_without_labels_holds_the_phase() -> None:
    _, success = judge_phase(shipped(), 0, TrackWindow(requests=500))
    # Without ratings the secondary user_satisfaction is left out; hallucination_rate stays.
    assert [a.metric for a in success] == ["error_rate", "latency_p95", "hallucination_rate"]


def window(requests: int, errors: int) -> TrackWindow:
    counts = TrackWindow(requests=requests)
    counts.errors = {"upstream_5xx": errors}
    return counts


def test_a_look_is_a_pure_function_of_the_plan_the_tests_and_the_counts() -> None:
    """The same inputs give the same look, the tests given stay as they were, and feeding the
    look its own new tests with the same totals adds no evidence (each count is fed once)."""
    plan = shipped()
    tests = fresh_tests()
    before = copy.deepcopy(tests)
    counts = Counts(
        since=(window(2_000, 200), window(20_000, 20)),
        phase=(window(2_000, 200), window(20_000, 20)),
        rollout_s=600.0,
        phase_s=600.0,
    )
    first = look(plan, 0, None, tests, counts)
    assert tests == before
    assert look(plan, 0, None, tests, counts) == first
    error_rate = next(a for a in first.rollback if a.metric == "error_rate_vs_baseline")
    assert error_rate.verdict is Verdict.FAIL  # 10 % against 0.1 %
    assert first.tests["error_rate"].consumed == [2_000, 200, 20_000, 20]
    again = look(plan, 0, None, first.tests, counts)
    assert again.tests == first.tests
    assert {v.metric for v in first.verdicts} >= {"error_rate", "error_rate_vs_baseline"}
