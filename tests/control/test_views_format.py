"""The pieces ``splitgate rollout`` builds its lines from, table-driven: an event's detail
without repeated labels, a verdict's reason after its metric, figures with their units,
spans and times, and a verdict line that always says why."""

from __future__ import annotations

from typing import Any

import pytest

from control import views


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
