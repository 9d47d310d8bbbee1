"""The rollout scenario stepped by hand against a scripted admin API."""

from __future__ import annotations

from typing import Any

from loadtests.admin import AdminError
from loadtests.scenario_rollout import BEFORE, MAX_READ_ERRORS, RolloutScenario, phase_label
from loadtests.verdict import RolloutResult

PHASES = [{"name": "5%", "traffic": 5}, {"name": "50%", "traffic": 50}]


def record(status: str, phase: int = 0, *events: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": "chat-1",
        "plan": {"phases": PHASES},
        "state": {
            "status": status,
            "phase": phase,
            "history": [{"at": 0, "kind": k, "detail": d} for k, d in events],
        },
    }


class FakeApi:
    def __init__(self, *records: dict[str, Any] | AdminError) -> None:
        self.records = list(records)
        self.plans: list[str] = []
        self.start_error: AdminError | None = None

    def start_rollout(self, plan_yaml: str) -> dict[str, Any]:
        if self.start_error is not None:
            raise self.start_error
        self.plans.append(plan_yaml)
        return record("pending")

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        assert rollout_id == "chat-1"
        next_one = self.records.pop(0)
        if isinstance(next_one, AdminError):
            raise next_one
        return next_one


def scenario(api: FakeApi, expect: str = "promoted") -> RolloutScenario:
    return RolloutScenario(api, "PLAN", start_after_s=10, expect=expect)


def test_labels() -> None:
    assert phase_label(record("pending")) == "rollout pending"
    assert phase_label(record("running", 1)) == "phase 2: 50%"
    assert phase_label(record("awaiting_approval", 1)) == "phase 2: 50% (awaiting_approval)"
    assert phase_label(record("rolled_back", 1)) == "after: rolled_back"
    assert phase_label(record("running", 5)) == "phase 6: ?"


def test_starts_after_the_warm_up_and_follows_to_promotion() -> None:
    api = FakeApi(
        record("running", 0, ("phase", "5%: 5%")),
        record("running", 0, ("phase", "5%: 5%")),
        record("running", 1, ("phase", "50%: 50%")),
        record("promoted", 1, ("promoted", "every phase passed")),
    )
    s = scenario(api)
    assert not s.step(0.0)  # users not all spawned yet: never starts
    s.steady(5.0)
    s.steady(9.0)  # only the first call counts
    assert not s.step(14.0) and api.plans == [] and s.label == BEFORE
    assert not s.step(15.0) and api.plans == ["PLAN"] and s.label == "rollout pending"
    assert not s.step(16.0) and s.label == "phase 1: 5%"
    assert not s.step(17.0)
    assert not s.step(18.0) and s.label == "phase 2: 50%"
    assert s.step(19.0) and s.label == "after: promoted"
    assert s.result() == RolloutResult("promoted", "promoted", "promoted: every phase passed")
    assert s.timeline == [
        (15.0, "rollout pending"),
        (16.0, "phase 1: 5%"),
        (18.0, "phase 2: 50%"),
        (19.0, "after: promoted (promoted: every phase passed)"),
    ]


def test_a_rollback_is_over_and_judged_against_the_expectation() -> None:
    api = FakeApi(record("rolled_back", 0, ("rolled_back", "error_rate 9% > 5%")))
    s = scenario(api)
    s.steady(0.0)
    s.step(10.0)
    assert s.step(11.0)
    assert s.result().problem() == (
        "the rollout ended rolled_back, expected promoted: rolled_back: error_rate 9% > 5%"
    )


def test_a_refused_start_ends_the_scenario() -> None:
    api = FakeApi()
    api.start_error = AdminError("POST /v1/rollouts: HTTP 409: route 'chat' already has one")
    s = scenario(api)
    s.steady(0.0)
    assert s.step(10.0)
    assert s.result() == RolloutResult(
        "promoted", None, "POST /v1/rollouts: HTTP 409: route 'chat' already has one"
    )


def test_read_errors_are_retried_then_give_up() -> None:
    down = AdminError("GET: connection refused")
    api = FakeApi(down, record("running", 0), *[down] * MAX_READ_ERRORS)
    s = scenario(api)
    s.steady(0.0)
    s.step(10.0)
    assert not s.step(11.0)  # one failure, then a good read resets the count
    assert not s.step(12.0) and s.status == "running"
    for i in range(MAX_READ_ERRORS - 1):
        assert not s.step(13.0 + i)
    assert s.step(100.0)
    assert s.result().problem() == (
        "the rollout had not ended when the run stopped: running GET: connection refused"
    )
