"""A canary that opens with a shadow phase, stepped by hand: the route mirrors to the candidate
from the phase's write until the write that leaves it, whichever way it is left."""

from __future__ import annotations

import pytest

from config.plans import CanaryPlan, parse_plan
from config.shadow import Shadow
from control.analysis.verdict import Assessment, Verdict
from control.strategies.canary import (
    Observation,
    SetWeights,
    State,
    Status,
    command,
    start,
    tick,
    written,
)

HOUR = 3600.0


def shadow_plan(first: str = "") -> CanaryPlan:
    plan = parse_plan(
        f"""canary_deployment:
  route: chat
  candidate: {{track: canary, version: v2, upstreams: ["http://127.0.0.1:9002"]}}
  phases:
    - name: shadow
      shadow: {{percent: 20, max_in_flight: 4}}
      duration: 1h
      criteria: {{error_rate: "< 1%"}}
      {first}
    - {{name: "10%", traffic: 10, duration: 1h}}
    - {{name: "100%", traffic: 100}}
"""
    )
    assert isinstance(plan, CanaryPlan)
    return plan


PLAN = shadow_plan()
MIRROR = SetWeights(0, shadow=Shadow(track="canary", percent=20, max_in_flight=4))
OK = (Assessment("error_rate", Verdict.PASS, 0.001, "< 1%", 1000, "0.1 %"),)
FAILED = (Assessment("error_rate", Verdict.FAIL, 0.09, "> 5%", 1000, "9 %"),)


def mirroring() -> State:
    state, actions = start(PLAN, State(), 0.0)
    assert actions == [MIRROR]
    assert state.history[-1].detail == "shadow: 0%, shadow 20%"
    return written(state, 2)


def test_entering_the_shadow_phase_mirrors_to_the_candidate_at_0_percent() -> None:
    state = mirroring()
    assert (state.status, state.phase) == (Status.RUNNING, 0)
    (action,) = start(PLAN, State(), 0.0)[1]
    assert action.shadow is not None and action.shadow.track == PLAN.candidate.track
    assert not action.end_shadow


def test_passing_the_shadow_phase_raises_the_weight_and_ends_the_mirroring_at_once() -> None:
    state = mirroring()
    state, actions = tick(PLAN, state, Observation(0.5 * HOUR, True, OK, OK))
    assert (state.phase, actions) == (0, [])  # the bake lasts an hour
    state, actions = tick(PLAN, state, Observation(1 * HOUR, True, OK, OK))
    assert (state.phase, actions) == (1, [SetWeights(10, end_shadow=True)])
    state = written(state, 3)
    state, actions = tick(PLAN, state, Observation(2 * HOUR, True, OK, OK))
    # Every later write of the plan ends it again: harmless, and safe after a manual edit.
    assert (state.phase, actions) == (2, [SetWeights(100, end_shadow=True)])


def test_a_failed_shadow_phase_rolls_back_and_stops_mirroring() -> None:
    state, actions = tick(PLAN, mirroring(), Observation(0.1 * HOUR, True, FAILED, OK))
    assert (state.status, actions) == (Status.ROLLED_BACK, [SetWeights(0.0, end_shadow=True)])


def test_missed_shadow_criteria_roll_back_and_stop_mirroring() -> None:
    missed = (Assessment("error_rate", Verdict.FAIL, 0.02, "< 1%", 1000, "2 %"),)
    state, actions = tick(PLAN, mirroring(), Observation(1 * HOUR, True, OK, missed))
    assert (state.status, actions) == (Status.ROLLED_BACK, [SetWeights(0.0, end_shadow=True)])


def test_pause_keeps_mirroring_and_abort_ends_it() -> None:
    state, actions = command(PLAN, mirroring(), "pause", 0.2 * HOUR)
    assert (state.status, actions) == (Status.PAUSED, [])
    state, actions = command(PLAN, state, "abort", 0.3 * HOUR)
    assert (state.status, actions) == (Status.ABORTED, [SetWeights(0.0, end_shadow=True)])


@pytest.mark.parametrize("on_inconclusive", ["promote", "rollback"])
def test_an_undecided_shadow_phase_ends_the_mirroring_either_way(on_inconclusive: str) -> None:
    plan = PLAN.model_copy(update={"on_inconclusive": on_inconclusive})
    pending = (Assessment("error_rate", Verdict.INCONCLUSIVE, None, "< 1%", 10, "10 requests"),)
    state, actions = tick(plan, mirroring(), Observation(3 * HOUR, True, OK, pending))
    weight = 10.0 if on_inconclusive == "promote" else 0.0
    assert actions == [SetWeights(weight, end_shadow=True)], state.history[-1]


def test_a_shadow_phase_waiting_for_promotion_mirrors_until_promoted() -> None:
    plan = shadow_plan(first="auto_promote: false")
    state = written(start(plan, State(), 0.0)[0], 2)
    state, actions = tick(plan, state, Observation(1 * HOUR, True, OK, OK))
    assert (state.status, actions) == (Status.AWAITING_PROMOTION, [])
    state, actions = command(plan, state, "promote", 1.5 * HOUR)
    assert (state.status, actions) == (Status.RUNNING, [SetWeights(10, end_shadow=True)])


def test_a_plan_without_a_shadow_phase_never_touches_the_routes_mirroring() -> None:
    plan = parse_plan(
        """canary_deployment:
  route: chat
  candidate: {track: canary, version: v2, upstreams: ["http://127.0.0.1:9002"]}
  phases: [{name: "10%", traffic: 10}, {name: "100%", traffic: 100}]
"""
    )
    assert isinstance(plan, CanaryPlan)
    state, actions = start(plan, State(), 0.0)
    assert actions == [SetWeights(10)] and actions[0].shadow is None
    state, actions = command(plan, written(state, 2), "abort", 1.0)
    assert actions == [SetWeights(0.0)] and not actions[0].end_shadow
