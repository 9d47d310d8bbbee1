"""Reading a flag schedule's progress record: what does not read is refused with the reason
(``UnreadableSchedule``), never with another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest

from control.schedule_store import UnreadableSchedule, read_record
from tests.config.test_schedule_records import STORED

FLAG = STORED["flag"]


def test_a_good_record_reads() -> None:
    assert read_record(FLAG, json.dumps(STORED)).version == STORED["version"]


def with_test(state: dict[str, Any]) -> str:
    analysis = {**STORED["analysis"], "test": {"test": state, "consumed": [0, 0, 0, 0]}}
    return json.dumps({**STORED, "analysis": analysis})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "record: Invalid JSON"),
        ("[]", "record: Input should be an object"),
        (json.dumps({**STORED, "flag": "other"}), "it is the record of flag 'other'"),
        (
            json.dumps({**STORED, "applied": None, "version": "x"}),
            "applied: Input should be a valid array; version: ",
        ),
        (with_test({"alpha": 0.01, "bogus": 1}), "analysis.test.test: "),
    ],
)
def test_what_does_not_read_is_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(UnreadableSchedule) as caught:
        read_record(FLAG, raw)
    assert reason in caught.value.reason, caught.value.reason
    assert caught.value.flag == FLAG and "\n" not in str(caught.value)
