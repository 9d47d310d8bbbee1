"""Rollout records as the admin API answers them, for the tests of what ``splitgate rollout``
prints: a running canary and its variants (awaiting approval, rolled back, a record from
before the newer keys, an A/B report), and what every rendering must avoid."""

from __future__ import annotations

import copy
import re
from typing import Any

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
