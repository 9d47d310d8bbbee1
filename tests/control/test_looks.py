"""One look's pure parts: which criteria a phase is judged on."""

from __future__ import annotations

from pathlib import Path

from config.metrics import TrackWindow
from config.plans import CanaryPlan, load_plan
from control.looks import criteria, judge_phase

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
