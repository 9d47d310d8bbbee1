"""What ``splitgate rollout`` prints of a rollout record, table-driven over record shapes."""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

import pytest

from control import views
from tests.control.view_records import (
    NEW_VERDICTS,
    NOW,
    STARTED,
    ab_report,
    assert_readable,
    awaiting_approval,
    canary_plan,
    old_record,
    record,
    rolled_back,
    text,
)

CASES = {
    "running phase 2 of 4": (
        record(),
        [
            "RUNNING  canary on route chat: canary v1.1.0 over stable",
            "weights: stable 75 %, canary 25 %",
            "done",
            "current     2. Phase 2: 25%",
            "1 min 10 s in phase, 50 s of 2 min left, decides within 2 min 50 s",
            "next        3. 50%",
            "error_rate > 5% pass: 0.4 % (upper bound 0.9 %) over 1,234 requests, below 5 %, baseline 0.3 %",
            "error rate vs baseline inconclusive: 5 of 1234 requests",
            "latency_p95 < 2000ms inconclusive: 812 ms over 50 requests",
            "baseline 640 ms",
            "~2 min 10 s to go at the current rate",
            "waiting for the phase's observation period: 50 s left",
            "last event: phase: Phase 2: 25% (1 min 10 s ago)",
        ],
    ),
    "awaiting approval": (
        awaiting_approval(),
        [
            "AWAITING APPROVAL",
            "approval    4. full",
            "ACTION NEEDED: splitgate rollout approve chat-1a2b3c4d (to start phase 4 of 4: full (100 %))",
            "last event: waiting: full needs approval (5 s ago)",
        ],
    ),
    "rolled back": (
        rolled_back(),
        [
            "ROLLED BACK",
            "rolled back 2. Phase 2: 25%",
            "weights: stable 100 %, canary 0 %",
            "last event: rolled_back: error_rate: 7 % over 900 requests > 5 % (3 s ago)",
        ],
    ),
    "A/B report": (
        ab_report(),
        [
            "COMPLETED  A/B test on route chat",
            "  split: stable 50 %, canary 50 %",
            "served: stable 10,000 requests, canary 10,000 requests",
            "report (the test ran for 1 h):",
            "  error_rate: a 1.02% (n=10000) vs b 2.95% (n=10000), b worse, p=3e-12",
        ],
    ),
    "without the new keys": (
        old_record(),
        [
            "error_rate < 1% fail: 1.23 %, 2,000 samples",
            "user_satisfaction > 4.0/5.0 inconclusive: 3 samples, 30 needed",
            "decides within 4 min 50 s",  # 3 × the 2 min bake, less 1 min 10 s
        ],
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_status_lines(name: str) -> None:
    given, expected = CASES[name]
    out = text(views.status_lines(given, NOW, acked=True, tz=UTC))
    for part in expected:
        assert part in out, f"{part!r} not in\n{out}"
    assert_readable(out)
    assert re.search(r"^started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \(.+ ago\)", out, re.M)


def test_a_criterion_is_listed_once() -> None:
    out = text(views.status_lines(old_record(), NOW, tz=UTC))
    assert out.count("error_rate < 1% fail") == 1


@pytest.mark.parametrize(
    ("given", "acked", "expected"),
    [
        (record(), None, "(acks from every proxy replica first)"),
        (record(), True, "waiting for the phase's observation period: 50 s left"),
        (record(acked=True), None, "waiting for the phase's observation period: 50 s left"),
        (
            record(waiting_for="acks from every proxy replica, then the next look"),
            True,
            "waiting for the next look",
        ),
    ],
)
def test_the_acks_are_mentioned_until_they_are_in(
    given: dict[str, Any], acked: bool | None, expected: str
) -> None:
    assert expected in views.headline(given, acked)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (record(), "chat-1a2b3c4d: running · phase 2 of 4: 25% · waiting for the phase's"),
        (
            awaiting_approval(),
            "chat-1a2b3c4d: awaiting approval · phase 4 of 4: full (100 %) · run: splitgate rollout approve chat-1a2b3c4d",
        ),
        (rolled_back(), "rolled back · phase 2 of 4: 25% · rolled_back: error_rate: 7 %"),
        (
            ab_report(),
            "chat-ab000001: completed · A/B test stable 50 % / canary 50 % · completed: the test",
        ),
    ],
)
def test_headline(given: dict[str, Any], expected: str) -> None:
    line = views.headline(given)
    assert line.startswith(expected) or expected in line, line


def test_an_event_without_detail_has_no_dangling_colon() -> None:
    r = record("paused")
    r["state"]["history"].append({"at": NOW, "kind": "paused", "detail": ""})
    line = views.headline(r)
    assert "· paused ·" in line and "paused: " not in line
    assert "splitgate rollout resume chat-1a2b3c4d" in line


def test_times_read_as_iso_8601_and_how_long_ago() -> None:
    assert views.when(NOW - 180, NOW, UTC) == "2025-11-29T17:22:23+00:00 (3 min ago)"


def test_a_look_names_its_time_and_phase() -> None:
    look = {"at": NOW - 180, "phase": 1, "verdicts": NEW_VERDICTS}
    lines = views.look_lines(look, canary_plan()["phases"], NOW, UTC)
    assert lines[0] == "2025-11-29T17:22:23+00:00 (3 min ago), phase 2 of 4: 25%:"
    assert_readable(text(lines[1:]))


def test_a_shadow_phase_shows_the_share_it_mirrors() -> None:
    plan = canary_plan()
    shadow = {"name": "shadow", "traffic": 0, "duration": 600, "shadow": {"percent": 10}}
    plan["phases"].insert(0, shadow)
    given = record(phase=0, plan=plan, weights={"stable": 100, "canary": 0})
    given["state"]["history"] = [
        {"at": STARTED, "kind": "phase", "detail": "shadow: 0%, shadow 10%"}
    ]
    lines = views.timeline(given, NOW)
    assert re.search(r"current +1\. shadow +0 %, shadow 10 % +\d", lines[0]), lines
    assert not any("shadow" in line for line in lines[1:]), lines
    out = text(views.status_lines(given, NOW, acked=True, tz=UTC))
    assert "last event: phase: shadow: 0%, shadow 10%" in out, out
    assert_readable(out)
