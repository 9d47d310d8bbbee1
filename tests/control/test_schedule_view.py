"""``GET /v1/flags/{name}/schedule``'s answer, pure: its fields are a contract."""

from __future__ import annotations

from config.flag_schedule import Schedule
from config.schedule_records import ScheduleRecord
from control.schedule_steps import step_key
from control.schedule_view import progress
from tests.config.test_schedule_records import STORED
from tests.control.schedule_doc import SEED, at

SCHEDULE = Schedule.model_validate(SEED)


def record() -> ScheduleRecord:
    first = step_key(SCHEDULE.schedule[0])
    applied = [{**STORED["applied"][0], "key": first, "date": "2025-04-01"}]
    return ScheduleRecord.model_validate({**STORED, "applied": applied})


def test_the_answer_keeps_its_fields() -> None:
    answer = progress("new_prompt_v2", SCHEDULE, record(), at("2025-04-10T00:00"))
    assert answer["last"] == STORED["last"]
    assert answer["analysis"] == {
        "since": STORED["analysis"]["since"],
        "verdict": STORED["analysis"]["verdict"],
    }
    assert {k: answer[k] for k in ("flag", "timezone", "paused", "applied", "completed")} == {
        "flag": "new_prompt_v2",
        "timezone": "UTC",
        "paused": False,
        "applied": 1,
        "completed": False,
    }
    assert answer["steps"][0] == {
        "step": 1,
        "date": "2025-04-01",
        "percentage": 5,
        "target": "internal_users",
        "action": None,
        "requires_analysis": False,
        "due_at": "2025-04-01T00:00:00+00:00",
        "state": "applied",
        "applied_at": STORED["applied"][0]["at"],
        "generation": 7,
    }
    assert [s["state"] for s in answer["steps"]] == ["applied", "due", "scheduled", "scheduled"]
    assert "unreadable" not in answer


def test_a_removed_flag_lists_what_was_applied() -> None:
    answer = progress("new_prompt_v2", None, record(), at("2025-05-01T00:00"))
    assert answer["removed"] is True and answer["applied"] == 1
    assert answer["steps"] == [record().applied[0].model_dump(mode="json")]


def test_an_unreadable_record_claims_nothing_and_says_why() -> None:
    answer = progress("new_prompt_v2", SCHEDULE, None, at("2025-04-10T00:00"), "version: bad")
    assert answer["unreadable"] == "version: bad"
    assert answer["last"]["outcome"] == "unreadable" and answer["analysis"] is None
    assert [s["state"] for s in answer["steps"]] == ["unknown", "unknown", "scheduled", "scheduled"]
