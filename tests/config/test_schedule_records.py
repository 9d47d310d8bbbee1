"""The flag schedule's progress record: its JSON as earlier versions wrote it, read back
field for field, and transitions that return new records."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest
from pydantic import ValidationError

from config.metrics import TrackWindow
from config.schedule_records import Analysis, AppliedStep, ScheduleRecord

WINDOW = asdict(TrackWindow(requests=120, errors={"connect": 0, "upstream_5xx": 2}))
STORED: dict[str, Any] = {
    "flag": "new_prompt_v2",
    "created_at": 1_743_000_000.0,
    "applied": [
        {
            "key": '{"date":"2025-04-01"}',
            "date": "2025-04-01",
            "at": 1_743_465_600.0,
            "generation": 7,
        },
        {
            "key": '{"date":"2025-04-08"}',
            "date": "2025-04-08",
            "at": 1_744_070_400.0,
            "generation": None,
        },
    ],
    "last": {
        "at": 1_744_070_400.0,
        "outcome": "in_effect",
        "detail": "step 2 of 4: already in effect",
    },
    "analysis": {
        "since": 1_744_070_400.0,
        "accumulator": {
            "cursor": 1_744_070_400,
            "closed": {"flag:new_prompt_v2": WINDOW},
            "offset": {},
        },
        "verdict": {
            "metric": "error_rate",
            "verdict": "inconclusive",
            "value": 0.0,
            "threshold": "",
            "sample": 12,
            "reason": "12 released requests since the previous step, 100 needed",
            "bound": None,
            "needed": 88,
            "unit": "",
            "at": 1_744_070_410.0,
        },
        "test": {"test": {"alpha": 0.01, "pass_ratio": 1.5}, "consumed": [0, 0, 0, 0]},
    },
    "version": 5,
}


def test_a_stored_record_reads_and_writes_back_the_same_json() -> None:
    record = ScheduleRecord.model_validate_json(json.dumps(STORED))
    assert record.model_dump(mode="json") == STORED
    assert record.applied_keys() == [step["key"] for step in STORED["applied"]]


def test_fields_of_a_newer_version_are_kept() -> None:
    newer = {**STORED, "owner": "team-a", "last": {**STORED["last"], "by": "runner-2"}}
    assert ScheduleRecord.model_validate(newer).model_dump(mode="json") == newer


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"applied": "all"}, "applied"),
        ({"analysis": None}, "analysis"),
        ({"version": -1}, "version"),
        ({"last": {"at": 1.0}}, "last.outcome"),
        (
            {
                "analysis": {
                    **STORED["analysis"],
                    "verdict": {**STORED["analysis"]["verdict"], "verdict": "maybe"},
                }
            },
            "analysis.verdict.verdict",
        ),
    ],
)
def test_a_record_that_does_not_fit_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleRecord.model_validate({**STORED, **change})
    assert field in {".".join(map(str, e["loc"])) for e in caught.value.errors()}


def test_transitions_return_new_records_and_leave_the_old_one() -> None:
    record = ScheduleRecord.model_validate(STORED)
    before = record.model_dump(mode="json")
    fresh = Analysis.model_validate({"since": 2e9, "accumulator": {"cursor": 2_000_000_000}})
    noted = record.noted(2e9, "paused", "held by alice")
    assert noted.last is not None and (noted.last.outcome, noted.last.detail) == (
        "paused",
        "held by alice",
    )
    restarted = record.analysed(fresh)
    assert restarted.analysis.since == 2e9 and restarted.applied == record.applied
    # Re-applying step 1 after an edit drops step 2, which now counts as not applied.
    step = AppliedStep(key="k", date="2025-04-02", at=2e9, generation=9)
    stepped = record.stepped(0, step, fresh, "step 1 of 4 (2025-04-02): 6 %")
    assert stepped.applied == [step] and stepped.analysis == fresh
    assert stepped.last is not None and stepped.last.outcome == "applied"
    assert record.model_dump(mode="json") == before
    with pytest.raises(ValidationError):
        record.version = 6
