"""The canary strategy stepped by hand: phases, approvals, holds, rollbacks, commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.plans import CanaryPlan, load_plan
from control.analysis.verdict import Assessment, Verdict
from control.strategies.canary import (
    CommandRefused,
    Observation,
    SetWeights,
    State,
    Status,
    command,
    start,
    tick,
    written,
)


def shipped_canary_plan() -> CanaryPlan:
    plan = load_plan(Path(__file__).parents[2] / "config" / "examples" / "plans" / "canary.yaml")
    assert isinstance(plan, CanaryPlan)
    return plan


PLAN = shipped_canary_plan()
HOUR = 3600.0


def a(verdict: Verdict, metric: str = "error_rate") -> Assessment:
    return Assessment(metric, verdict, 0.01, "< 1%", 1000, f"{metric} {verdict.value}")


OK = (a(Verdict.PASS),)


def running() -> State:
    state, actions = start(PLAN, State(), 0.0)
    assert actions == [SetWeights(5)]
    return written(state, 2)


def test_a_healthy_canary_goes_through_every_phase_with_approvals() -> None:
    state = running()
    state, actions = tick(PLAN, state, Observation(1 * HOUR, True, OK, OK))
    assert (state.status, actions) == (Status.RUNNING, [])  # phase 1 lasts 2 hours
    state, actions = tick(PLAN, state, Observation(2 * HOUR, True, OK, OK))
    assert (state.phase, actions) == (1, [SetWeights(25)])
    state = written(state, 3)
    state, actions = tick(PLAN, state, Observation(6 * HOUR, True, OK, OK))
    assert (state.status, state.phase, actions) == (Status.AWAITING_APPROVAL, 2, [])
    state, actions = command(PLAN, state, "approve", 6.5 * HOUR)
    assert (state.status, actions) == (Status.RUNNING, [SetWeights(50)])
    state = written(state, 4)
    state, actions = tick(PLAN, state, Observation(14.5 * HOUR, True, OK, OK))
    assert state.status is Status.AWAITING_APPROVAL and state.phase == 3
    state, actions = command(PLAN, state, "approve", 15 * HOUR)
    assert actions == [SetWeights(100)]
    state = written(state, 5)
    state, _ = tick(PLAN, state, Observation(15.1 * HOUR, True, OK, OK))
    assert state.status is Status.PROMOTED
    assert [e.kind for e in state.history].count("phase") == 4


def test_nothing_is_judged_before_every_replica_acked() -> None:
    state = running()
    failing = (a(Verdict.FAIL),)
    assert tick(PLAN, state, Observation(3 * HOUR, False, failing, failing)) == (state, [])
    pending, _ = start(PLAN, State(), 0.0)  # weights not written yet
    assert tick(PLAN, pending, Observation(3 * HOUR, True, failing, failing)) == (pending, [])


def test_a_rollback_condition_rolls_back_at_once() -> None:
    state = running()
    state, actions = tick(PLAN, state, Observation(0.1 * HOUR, True, (a(Verdict.FAIL),), OK))
    assert (state.status, actions) == (Status.ROLLED_BACK, [SetWeights(0.0)])
    assert "error_rate fail" in state.history[-1].detail
    with pytest.raises(CommandRefused, match="rolled_back"):
        command(PLAN, state, "resume", 0.2 * HOUR)


def test_missed_success_criteria_at_the_end_of_a_phase_roll_back() -> None:
    state, actions = tick(
        PLAN, running(), Observation(2 * HOUR, True, OK, (a(Verdict.FAIL, "latency_p95"),))
    )
    assert (state.status, actions) == (Status.ROLLED_BACK, [SetWeights(0.0)])


def test_inconclusive_holds_the_phase() -> None:
    state = running()
    held, actions = tick(PLAN, state, Observation(3 * HOUR, True, OK, (a(Verdict.INCONCLUSIVE),)))
    assert (held, actions) == (state, [])


def short(on_inconclusive: str, max_duration: float | None = None) -> CanaryPlan:
    """10 % for at least 60 s, then 100 %."""
    first: dict[str, object] = {"name": "10%", "traffic": 10, "duration": 60}
    if max_duration is not None:
        first["max_duration"] = max_duration
    return CanaryPlan.model_validate(
        {
            "route": "chat",
            "candidate": {"version": "v2", "upstreams": ["http://127.0.0.1:1"]},
            "phases": [first, {"name": "100%", "traffic": 100}],
            "on_inconclusive": on_inconclusive,
        }
    )


SHORT = Assessment(
    "error_rate", Verdict.INCONCLUSIVE, 0.0, "< 1%", 102, "0 % over 102 requests", needed=198
)


@pytest.mark.parametrize(
    ("on_inconclusive", "status", "actions"),
    [
        ("pause", Status.PAUSED, []),
        ("promote", Status.RUNNING, [SetWeights(100)]),
        ("rollback", Status.ROLLED_BACK, [SetWeights(0.0)]),
    ],
)
def test_a_phase_decides_by_its_max_duration(
    on_inconclusive: str, status: Status, actions: list[SetWeights]
) -> None:
    plan = short(on_inconclusive)
    state = written(start(plan, State(), 0.0)[0], 2)
    # Past the bake (60 s) but inside the default max_duration (3 × 60 s): hold.
    held, none = tick(plan, state, Observation(179, True, OK, (SHORT,)))
    assert (held, none) == (state, [])
    after, done = tick(plan, state, Observation(180, True, OK, (SHORT,)))
    assert (after.status, done) == (status, actions)
    reason = after.history[-1 if status is not Status.RUNNING else -2].detail
    assert reason.startswith("not enough traffic: 102 of ~300 samples for error_rate < 1%"), reason
    assert f"on_inconclusive: {on_inconclusive}" in reason


def test_max_duration_is_explicit_or_one_hour_without_a_duration() -> None:
    plan = short("pause", max_duration=90)
    state = written(start(plan, State(), 0.0)[0], 2)
    assert tick(plan, state, Observation(90, True, OK, (SHORT,)))[0].status is Status.PAUSED
    last = plan.phases[1]
    assert (last.duration, last.deadline()) == (None, 3600.0)


def test_a_phase_whose_weights_are_never_acked_pauses_at_its_max_duration() -> None:
    plan = short("promote")
    state = written(start(plan, State(), 0.0)[0], 7)
    assert tick(plan, state, Observation(100, False)) == (state, [])
    paused, actions = tick(plan, state, Observation(180, False))
    assert (paused.status, actions) == (Status.PAUSED, [])
    assert "generation 7" in paused.history[-1].detail


def test_a_resumed_phase_gets_a_new_deadline() -> None:
    plan = short("pause")
    state = written(start(plan, State(), 0.0)[0], 2)
    paused, _ = tick(plan, state, Observation(200, True, OK, (SHORT,)))
    resumed, _ = command(plan, paused, "resume", 300)
    assert resumed.status is Status.RUNNING
    assert tick(plan, resumed, Observation(400, True, OK, (SHORT,)))[0].status is Status.RUNNING
    assert tick(plan, resumed, Observation(480, True, OK, (SHORT,)))[0].status is Status.PAUSED


def test_metrics_outages_are_errors_until_the_limit() -> None:
    state = running()
    down = (a(Verdict.ERROR),)
    for i in range(PLAN.limits.consecutive_errors - 1):
        state, actions = tick(PLAN, state, Observation(i * 60.0, True, down, ()))
        assert (state.status, actions) == (Status.RUNNING, [])
    state, actions = tick(PLAN, state, Observation(600.0, True, down, ()))
    assert (state.status, actions) == (Status.ROLLED_BACK, [SetWeights(0.0)])
    assert state.history[-1].detail == "metrics unavailable 4 times in a row"


def test_errors_and_failures_have_limits_in_a_row_and_in_all() -> None:
    plan = PLAN.model_copy(
        update={
            "limits": PLAN.limits.model_copy(
                update={"consecutive_failures": 2, "total_failures": 3, "total_errors": 3}
            )
        }
    )
    state = running()
    bad, down = (a(Verdict.FAIL),), (a(Verdict.ERROR),)
    # Failures: one alone holds; a good look resets the streak but not the total.
    for look, seen in enumerate([bad, OK, bad, OK]):
        state, actions = tick(plan, state, Observation(look * 60.0, True, seen, ()))
        assert (state.status, actions) == (Status.RUNNING, [])
    assert (state.failure_streak, state.failures) == (0, 2)
    state, actions = tick(plan, state, Observation(300.0, True, bad, ()))
    assert (state.status, actions) == (Status.ROLLED_BACK, [SetWeights(0.0)])
    assert state.history[-1].detail.endswith("(3 failed looks)")
    # Two failures in a row roll back before the total is reached.
    state = running()
    for look in range(2):
        state, _ = tick(plan, state, Observation(look * 60.0, True, bad, ()))
    assert state.status is Status.ROLLED_BACK
    # Errors: never three in a row here, but three in all.
    state = running()
    for look, seen in enumerate([down, OK, down, OK]):
        state, _ = tick(plan, state, Observation(look * 60.0, True, seen, ()))
        assert state.status is Status.RUNNING
    state, _ = tick(plan, state, Observation(300.0, True, down, ()))
    assert state.status is Status.ROLLED_BACK
    assert state.history[-1].detail == "metrics unavailable 3 times in all"


def test_pause_resume_restarts_the_phase_clock_and_abort_sets_zero() -> None:
    state = running()
    state, _ = command(PLAN, state, "pause", 1 * HOUR)
    assert tick(PLAN, state, Observation(5 * HOUR, True, OK, OK)) == (state, [])
    state, _ = command(PLAN, state, "resume", 5 * HOUR)
    state, actions = tick(PLAN, state, Observation(6 * HOUR, True, OK, OK))
    assert (state.phase, actions) == (0, [])  # one hour observed since resuming, not two
    state, actions = command(PLAN, state, "abort", 6 * HOUR)
    assert (state.status, actions) == (Status.ABORTED, [SetWeights(0.0)])


def test_commands_that_do_not_apply_name_the_state() -> None:
    state = running()
    for name in ("approve", "promote", "resume"):
        with pytest.raises(CommandRefused, match="running"):
            command(PLAN, state, name, 0.0)
    with pytest.raises(CommandRefused):
        start(PLAN, state, 0.0)


def test_a_phase_without_auto_promote_waits_for_promote() -> None:
    plan = PLAN.model_copy(
        update={
            "phases": [
                p.model_copy(update={"auto_promote": False}) if i == 0 else p
                for i, p in enumerate(PLAN.phases)
            ]
        }
    )
    state, actions = tick(plan, running(), Observation(2 * HOUR, True, OK, OK))
    assert (state.status, actions) == (Status.AWAITING_PROMOTION, [])
    state, actions = command(plan, state, "promote", 2.5 * HOUR)
    assert (state.status, actions) == (Status.RUNNING, [SetWeights(25)])


def test_production_requires_approval_for_full_traffic() -> None:
    from config.environments import Environment, with_environment

    plan = PLAN.model_copy(
        update={"phases": [p.model_copy(update={"requires_approval": False}) for p in PLAN.phases]}
    )
    production = Environment(deployment="canary", approval_required=True)
    assert [p.requires_approval for p in with_environment(plan, production).phases] == [
        False,
        False,
        False,
        True,
    ]
    assert with_environment(plan, None) is plan


def test_manual_rollback_pauses_and_says_why() -> None:
    from control.strategies.canary import hold_for_decision

    before = running()
    after, _ = tick(PLAN, before, Observation(0.1 * HOUR, True, (a(Verdict.FAIL),), OK))
    held, actions = hold_for_decision(before, after, 0.1 * HOUR)
    assert (held.status, actions) == (Status.PAUSED, [])
    assert (
        held.history[-1].kind == "rollback_advised"
        and "abort to roll back" in held.history[-1].detail
    )
    aborted, actions = command(PLAN, held, "abort", 0.2 * HOUR)
    assert (aborted.status, actions) == (Status.ABORTED, [SetWeights(0.0)])


def test_monitoring_level_sets_what_is_judged() -> None:
    from config.environments import Environment, with_environment

    basic = with_environment(PLAN, Environment(deployment="canary", monitoring="basic"))
    assert basic.comparison.method == "none" and basic.canary_metrics.secondary == []
    assert basic.canary_metrics.primary == PLAN.canary_metrics.primary
    full = with_environment(PLAN, Environment(deployment="canary", monitoring="comprehensive"))
    assert full.canary_metrics.hold_for_secondary and full.comparison == PLAN.comparison
    assert with_environment(PLAN, Environment(deployment="canary")) is PLAN
