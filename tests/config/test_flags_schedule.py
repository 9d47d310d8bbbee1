"""Feature flags, the gradual-rollout schedules: which steps are due (never twice, paused,
waiting for an analysis, in the schedule's time zone), unquoted YAML dates, and
``remove_flag`` only as the last step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from config.flag_schedule import Schedule, due_steps, step_time
from config.loader import parse_model
from config.schema import SplitgateConfig
from tests.config.flag_docs import SEED

# --- schedules ------------------------------------------------------------------------------


def schedule(**fields: Any) -> Schedule:
    steps = [
        {"date": "2025-04-01", "percentage": 5, "target": "internal_users"},
        {"date": "2025-04-08", "percentage": 20, "target": "beta_users"},
        {"date": "2025-04-15T09:30", "percentage": 50, "target": "all_users"},
        {"date": "2025-04-22", "percentage": 100, "target": "all_users", "action": "remove_flag"},
    ]
    return Schedule.model_validate({"schedule": steps, **fields})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("applied", "now", "due"),
    [
        (0, "2025-03-31T23:59:59", []),
        (0, "2025-04-01T00:00:00", ["2025-04-01"]),
        (1, "2025-04-01T12:00:00", []),  # applied already: never twice
        (1, "2025-04-15T09:29:00", ["2025-04-08"]),
        (2, "2025-04-15T09:30:00", ["2025-04-15T09:30"]),
        (0, "2025-05-01T00:00:00", ["2025-04-01", "2025-04-08", "2025-04-15T09:30", "2025-04-22"]),
        (4, "2026-01-01T00:00:00", []),
    ],
)
def test_due_steps(applied: int, now: str, due: list[str]) -> None:
    assert [s.date for s in due_steps(schedule(), applied, at(now))] == due


def test_a_paused_schedule_has_nothing_due() -> None:
    assert due_steps(schedule(paused=True), 0, at("2026-01-01T00:00:00")) == []


def test_a_step_that_needs_the_previous_analysis_waits_for_it() -> None:
    gated = schedule(requires_analysis=True)
    late = at("2026-01-01T00:00:00")
    assert [s.date for s in due_steps(gated, 0, late)] == ["2025-04-01"]
    assert [s.date for s in due_steps(gated, 1, late)] == ["2025-04-08"]
    steps = [s.model_dump() for s in schedule().schedule]
    steps[2]["requires_analysis"] = True
    one = Schedule.model_validate({"schedule": steps})
    assert [s.date for s in due_steps(one, 0, late)] == ["2025-04-01", "2025-04-08"]
    assert len(due_steps(one, 2, late)) == 2
    assert one.requires_analysis_at(2) and not one.requires_analysis_at(3)


def test_steps_fall_due_in_the_schedules_time_zone() -> None:
    tokyo = schedule(timezone="Asia/Tokyo")
    assert step_time(tokyo, 0) == at("2025-03-31T15:00:00")
    assert due_steps(tokyo, 0, at("2025-03-31T14:59:00")) == []
    assert len(due_steps(tokyo, 0, at("2025-03-31T15:00:00"))) == 1
    assert step_time(schedule(), 0) == at("2025-04-01T00:00:00")


def test_due_steps_refuses_a_naive_clock_and_a_bad_count() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_steps(schedule(), 0, datetime(2025, 4, 1))
    with pytest.raises(ValueError, match="outside"):
        due_steps(schedule(), 5, at("2025-04-01T00:00:00"))


def test_unquoted_yaml_dates_are_accepted() -> None:
    text = SEED.replace('date: "2025-04-01"', "date: 2025-04-01").replace(
        'date: "2025-04-08"', "date: 2025-04-08 06:00:00"
    )
    config = parse_model(text, SplitgateConfig)
    steps = config.feature_flags["new_prompt_v2"].gradual_rollout
    assert steps is not None
    assert [s.date for s in steps.schedule[:2]] == ["2025-04-01", "2025-04-08T06:00"]
    assert step_time(steps, 1) - step_time(steps, 0) == timedelta(days=7, hours=6)


def test_remove_flag_only_ends_a_schedule() -> None:
    steps = [s.model_dump() for s in schedule().schedule]
    steps[1], steps[3] = (
        {**steps[3], "date": steps[1]["date"]},
        {**steps[1], "date": steps[3]["date"]},
    )
    with pytest.raises(ValidationError, match="remove_flag must be the last step"):
        Schedule.model_validate({"schedule": steps})


def test_the_first_scheduled_step_never_waits_for_an_analysis() -> None:
    from config.flag_schedule import Schedule

    schedule = Schedule.model_validate(
        {
            "requires_analysis": True,
            "schedule": [
                {"date": "2025-04-01", "percentage": 5, "target": "all_users"},
                {"date": "2025-04-08", "percentage": 20, "target": "all_users"},
            ],
        }
    )
    # At 0 % a flag releases nobody, so there is nothing to analyse before the first step.
    assert [schedule.requires_analysis_at(i) for i in (0, 1)] == [False, True]
