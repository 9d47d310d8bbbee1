"""What ``splitgate rollout`` prints of a rollout record, table-driven over record shapes."""

from __future__ import annotations

import copy
import re
from datetime import UTC
from typing import Any

import pytest

from control import views

NOW = 1_764_437_123.0
STARTED = NOW - 600


def canary_plan(*, max_duration: bool = True) -> dict[str, Any]:
    phases = [
        {"name": "5%", "traffic": 5, "duration": 300},
        {"name": "Phase 2: 25%", "traffic": 25, "duration": 120},
        {"name": "50%", "traffic": 50, "duration": 600},
        {"name": "full", "traffic": 100, "duration": None, "requires_approval": True},
    ]
    if max_duration:
        for phase in phases:
            phase["max_duration"] = None
        phases[1]["max_duration"] = 240
    return {
        "route": "chat",
        "baseline": "stable",
        "candidate": {"track": "canary", "version": "v1.1.0", "upstreams": ["http://b"]},
        "phases": phases,
    }


NEW_VERDICTS: list[dict[str, Any]] = [
    {
        "metric": "error_rate",
        "verdict": "pass",
        "value": 0.004,
        "threshold": "> 5%",
        "sample": 1234,
        "reason": "0.4 % (upper bound 0.9 %) over 1,234 requests, below 5 %",
        "bound": 0.009,
        "needed": None,
        "unit": "%",
        "role": "rollback",
        "baseline": 0.003,
        "eta_s": None,
    },
    {
        "metric": "error_rate_vs_baseline",
        "verdict": "inconclusive",
        "value": 1.0,
        "threshold": "evidence >= 100",
        "sample": 1234,
        "reason": "5 of 1234 requests (0.41 %) against the baseline's 30 of 9000 (0.33 %); evidence 1 of 100 to roll back",
        "bound": None,
        "needed": None,
        "unit": "",
        "role": "rollback",
        "baseline": None,
        "eta_s": None,
    },
    {
        "metric": "latency_p95",
        "verdict": "inconclusive",
        "value": 812.0,
        "threshold": "< 2000ms",
        "sample": 50,
        "reason": "812 ms over 50 requests, not yet below 2000 ms (about 156 more requests at this rate)",
        "bound": None,
        "needed": 156,
        "unit": "ms",
        "role": "success",
        "baseline": 640.0,
        "eta_s": 130.0,
    },
]


def record(status: str = "running", phase: int = 1, **extra: Any) -> dict[str, Any]:
    history = [
        {"at": STARTED, "kind": "phase", "detail": "5%: 5%"},
        {"at": NOW - 70, "kind": "phase", "detail": "Phase 2: 25%: 25%"},
    ]
    base: dict[str, Any] = {
        "id": "chat-1a2b3c4d",
        "route": "chat",
        "strategy": "canary",
        "plan": canary_plan(),
        "created_at": STARTED,
        "created_by": "alice@cli",
        "state": {
            "status": status,
            "phase": phase,
            "phase_started_at": NOW - 70,
            "generation": 7,
            "history": history,
        },
        "weights": {"stable": 75, "canary": 25},
        "verdicts": copy.deepcopy(NEW_VERDICTS),
        "waiting_for": "the phase's observation period: 50 s left (acks from every proxy replica first)",
        "time_in_phase_s": 70.0,
        "checklist": {"required": {}, "recommended": {}},
        "warnings": [],
        "report": None,
        "post_deploy": None,
    }
    base.update(extra)
    return base


def awaiting_approval() -> dict[str, Any]:
    r = record("awaiting_approval", phase=3)
    r["state"]["history"].append(
        {"at": NOW - 5, "kind": "waiting", "detail": "full needs approval"}
    )
    r["waiting_for"] = "an approval (splitgate rollout approve chat-1a2b3c4d)"
    return r


def rolled_back() -> dict[str, Any]:
    r = record("rolled_back", phase=1, time_in_phase_s=None, waiting_for="")
    r["state"]["history"].append(
        {"at": NOW - 3, "kind": "rolled_back", "detail": "error_rate: 7 % over 900 requests > 5 %"}
    )
    r["weights"] = {"stable": 100, "canary": 0}
    return r


def old_record() -> dict[str, Any]:
    """A record from before ``max_duration`` and the verdicts' unit, bound, needed, eta."""
    r = record(plan=canary_plan(max_duration=False))
    r.pop("time_in_phase_s")
    r["verdicts"] = [
        {
            "metric": "error_rate",
            "verdict": "fail",
            "value": 0.0123,
            "threshold": "< 1%",
            "sample": 2000,
            "reason": "error_rate = 0.0123 misses < 1%",
            "role": "success",
        },
        {  # the same criterion, once as a primary metric and once as a success criterion
            "metric": "error_rate",
            "verdict": "fail",
            "value": 0.0123,
            "threshold": "< 1%",
            "sample": 2000,
            "reason": "error_rate = 0.0123 misses < 1%",
            "role": "success",
        },
        {
            "metric": "user_satisfaction",
            "verdict": "inconclusive",
            "value": 4.2,
            "threshold": "> 4.0/5.0",
            "sample": 3,
            "reason": "user_satisfaction: 3 samples, 30 needed",
            "role": "success",
        },
    ]
    return r


def ab_report() -> dict[str, Any]:
    summary = [
        "error_rate: a 1.02% (n=10000) vs b 2.95% (n=10000), b worse, p=3e-12",
        "latency_p95: a 800 ms (n=10000) vs b 790 ms (n=10000), no difference, p=0.4",
    ]
    return {
        "id": "chat-ab000001",
        "route": "chat",
        "strategy": "ab_test",
        "plan": {"route": "chat", "split": {"stable": 50, "canary": 50}, "duration": 3600},
        "created_at": NOW - 4000,
        "created_by": "bob@cli",
        "state": {
            "status": "completed",
            "phase": 0,
            "phase_started_at": NOW - 3900,
            "generation": None,
            "history": [
                {"at": NOW - 3900, "kind": "phase", "detail": "A/B split: stable=50, canary=50"},
                {"at": NOW - 300, "kind": "completed", "detail": "the test ran for 1 h"},
            ],
        },
        "served": {"stable": 10000, "canary": 10000},
        "verdicts": [],
        "waiting_for": "",
        "report": {"ended": "the test ran for 1 h", "summary": summary},
    }


def text(lines: list[str]) -> str:
    return "\n".join(lines)


def assert_readable(out: str) -> None:
    """What every rendering must avoid: repeated labels, empty reasons, epoch seconds."""
    assert not re.search(r"(?<![\w%])([\w%]+): \1(?![\w%])", out), out
    assert not re.search(r"error_rate(\w*) \w+: error_rate", out), out
    assert not re.search(r":[ \t]+$|: \(|: ·|::", out, re.MULTILINE), out
    assert str(int(NOW)) not in out and "1764" not in out, out
    assert "(acks from every proxy replica first)" not in out, out


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


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("phase: 10%: 10%", "phase: 10%"),
        ("phase: Phase 1: 5%: 5%", "phase: Phase 1: 5%"),
        ("phase: validate: 0%", "phase: validate: 0%"),
        ("error_rate: error_rate: 50 samples", "error_rate: 50 samples"),
        ("paused: ", "paused"),
    ],
)
def test_without_repeats(given: str, expected: str) -> None:
    assert views.without_repeats(given) == expected


@pytest.mark.parametrize(
    ("metric", "reason", "expected"),
    [
        ("error_rate", "error_rate: 50 samples, 1072 needed", "50 samples, 1072 needed"),
        ("error_rate_vs_baseline", "error rate vs baseline: 5/1000", "5/1000"),
        ("latency_p95", "812 ms over 50 requests", "812 ms over 50 requests"),
    ],
)
def test_after_metric(metric: str, reason: str, expected: str) -> None:
    assert views.after_metric(metric, reason) == expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.0123, "%", "1.23 %"),
        (0.0, "%", "0 %"),
        (1840.0, "ms", "1,840 ms"),
        (3.364, "ms", "3.36 ms"),
        (4.2, "/5", "4.20/5"),
        (5.4788, "", "5.48"),
        (None, "%", "n/a"),
    ],
)
def test_figure(value: float | None, unit: str, expected: str) -> None:
    assert views.figure(value, unit) == expected


@pytest.mark.parametrize(
    ("verdict", "unit"),
    [
        ({"metric": "error_rate"}, "%"),
        ({"metric": "latency_p95"}, "ms"),
        ({"metric": "ttfb_p99"}, "ms"),
        ({"metric": "user_satisfaction"}, "/5"),
        ({"metric": "error_rate_vs_baseline"}, ""),
        ({"metric": "error_rate", "unit": "ms"}, "ms"),
    ],
)
def test_unit_of(verdict: dict[str, Any], unit: str) -> None:
    assert views.unit_of(verdict) == unit


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0 s"), (45, "45 s"), (185, "3 min 5 s"), (720, "12 min"), (7800, "2 h 10 min")],
)
def test_span(seconds: float, expected: str) -> None:
    assert views.span(seconds) == expected


def test_times_read_as_iso_8601_and_how_long_ago() -> None:
    assert views.when(NOW - 180, NOW, UTC) == "2025-11-29T17:22:23+00:00 (3 min ago)"


def test_a_look_names_its_time_and_phase() -> None:
    look = {"at": NOW - 180, "phase": 1, "verdicts": NEW_VERDICTS}
    lines = views.look_lines(look, canary_plan()["phases"], NOW, UTC)
    assert lines[0] == "2025-11-29T17:22:23+00:00 (3 min ago), phase 2 of 4: 25%:"
    assert_readable(text(lines[1:]))


@pytest.mark.parametrize(
    "verdict",
    [
        {
            "metric": "error_rate",
            "verdict": "error",
            "value": None,
            "threshold": "< 1%",
            "reason": "",
        },
        {"metric": "latency_p95", "verdict": "pass", "value": None, "threshold": "< 2s"},
    ],
)
def test_a_verdict_always_says_why(verdict: dict[str, Any]) -> None:
    assert not views.verdict_line(verdict).rstrip().endswith(":")


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
