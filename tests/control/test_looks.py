"""One look's pure parts: which criteria a phase is judged on, and the look itself (a shadow
phase's too, on the candidate's shadow copies)."""

from __future__ import annotations

import copy
from pathlib import Path

from config.metrics import TrackWindow
from config.plans import CanaryPlan, load_plan, parse_plan
from control.analysis.verdict import Verdict
from control.looks import Counts, candidate_arm, criteria, fresh_tests, judge_phase, look

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


SHADOW_PLAN = """canary_deployment:
  route: chat
  candidate: {track: canary, version: v2, upstreams: ["http://127.0.0.1:9002"]}
  phases:
    - name: shadow
      shadow: {percent: 50}
      duration: 1h
      criteria: {error_rate: "< 2%", shadow_win_rate: "> 40%"}
      rollback_if: ["error_rate > 10%"]
    - {name: "10%", traffic: 10}
"""


def shadow_plan() -> CanaryPlan:
    plan = parse_plan(SHADOW_PLAN)
    assert isinstance(plan, CanaryPlan)
    return plan


def test_a_shadow_phase_judges_the_copies_by_its_own_criteria() -> None:
    plan = shadow_plan()
    assert (candidate_arm(plan, 0), candidate_arm(plan, 1)) == ("canary~shadow", "canary")
    copies = window(2_000, 4)
    copies.feedback = {"shadow_better": 30, "shadow_same": 40, "shadow_worse": 30}
    rollback, success = judge_phase(plan, 0, copies)
    assert [(a.metric, a.threshold) for a in rollback] == [("error_rate", "> 10%")]
    # Not the plan's canary_metrics (latency_p95 < 2000ms …): the phase's criteria alone.
    assert [(a.metric, a.threshold, a.verdict) for a in success] == [
        ("error_rate", "< 2%", Verdict.PASS),
        ("shadow_win_rate", "> 40%", Verdict.INCONCLUSIVE),  # 50 % of 100 pairs: too few yet
    ]
    _, live = judge_phase(plan, 1, window(2_000, 4))
    assert "latency_p95" in {a.metric for a in live}


def test_a_shadow_phase_compares_the_copies_in_slots_of_its_own() -> None:
    plan = shadow_plan()
    counts = Counts(
        since=(window(2_000, 200), window(20_000, 20)),
        phase=(window(2_000, 200), window(20_000, 20)),
        rollout_s=600.0,
        phase_s=600.0,
    )
    tests = fresh_tests()
    seen = look(plan, 0, None, tests, counts)
    compared = next(a for a in seen.rollback if a.metric == "error_rate_vs_baseline")
    assert compared.verdict is Verdict.FAIL  # the copies fail 10 %, the baseline 0.1 %
    assert seen.tests["shadow:error_rate"].consumed == [2_000, 200, 20_000, 20]
    assert "shadow:capacity" in seen.tests and "capacity" not in seen.tests
    # The live phases' tests are untouched: the first live look starts them from nothing.
    assert seen.tests["error_rate"] == tests["error_rate"]
    live = look(plan, 1, None, seen.tests, counts)
    assert live.tests["error_rate"].consumed == [2_000, 200, 20_000, 20]
    assert live.tests["shadow:error_rate"] == seen.tests["shadow:error_rate"]


def test_a_rate_limited_shadow_holds_its_phase() -> None:
    plan = shadow_plan()
    limited = window(1_000, 0)
    limited.errors = {"upstream_429": 600}
    counts = Counts(
        since=(limited, window(20_000, 20)),
        phase=(limited, window(20_000, 20)),
        rollout_s=600.0,
        phase_s=600.0,
    )
    seen = look(plan, 0, None, fresh_tests(), counts)
    assert [a.metric for a in seen.hold] == ["capacity"]
    assert seen.tests["shadow:capacity"].test["limited"] is True


def test_a_plan_with_a_shadow_phase_splits_each_comparisons_alpha() -> None:
    plain, shadowed = fresh_tests(), fresh_tests(shadowed=True)
    assert set(shadowed) == set(plain) | {f"shadow:{name}" for name in plain}
    for name, slot in plain.items():
        alpha = slot.test["alpha"]
        assert shadowed[name].test["alpha"] == shadowed[f"shadow:{name}"].test["alpha"]
        assert shadowed[name].test["alpha"] == alpha / 2
    # Together the two runs spend what one run of a plan without a shadow phase does.
    assert sum(s.test["alpha"] for s in shadowed.values()) == sum(
        s.test["alpha"] for s in plain.values()
    )
