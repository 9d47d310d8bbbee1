"""The analysis gate of a flag's schedule, pure: its verdicts and its sequential test."""

from __future__ import annotations

import random

import pytest

from config.metrics import ERROR_CLASSES, TrackWindow
from config.records import SequentialSlot
from control.analysis.verdict import Verdict
from control.schedule_gate import judge


def window(requests: int, errors: int) -> TrackWindow:
    counts = TrackWindow(requests=requests)
    counts.errors = {name: 0 for name in ERROR_CLASSES} | {"upstream_5xx": errors}
    return counts


@pytest.mark.parametrize(
    ("released", "baseline", "verdict", "reason"),
    [
        (window(99, 0), window(10_000, 10), Verdict.INCONCLUSIVE, "99 released requests"),
        (window(10_000, 50), window(100_000, 500), Verdict.PASS, "below 1.5 × the baseline's"),
        (window(2_000, 200), window(20_000, 200), Verdict.FAIL, "worse than the baseline's"),
        (window(500, 10), window(5_000, 50), Verdict.INCONCLUSIVE, "not yet clear"),
        # The same rate, but 25 errors cannot show it is not 1.5 × worse: it waits.
        (window(5_000, 25), window(50_000, 250), Verdict.INCONCLUSIVE, "not yet clear"),
        (window(1_000, 0), window(50, 0), Verdict.PASS, "too little baseline traffic"),
        (window(1_000, 80), window(50, 0), Verdict.FAIL, "too little baseline traffic"),
        (
            window(1_000, 10),
            None,
            Verdict.PASS,
            "upper bound 2.2 %) over 1,000 requests, below 5 %",
        ),
    ],
)
def test_judge(
    released: TrackWindow, baseline: TrackWindow | None, verdict: Verdict, reason: str
) -> None:
    result, _ = judge(released, baseline, None)
    assert result.verdict is verdict, result
    assert reason in result.reason


def test_the_gate_counts_each_request_once_however_often_it_looks() -> None:
    """Each look feeds the test only what arrived since the last: looking again at the same
    totals adds nothing, so the verdict does not drift toward a decision by itself."""
    released, baseline = window(2_000, 30), window(20_000, 200)
    first, slot = judge(released, baseline, None)
    for _ in range(50):
        again, slot = judge(released, baseline, slot)
        assert again.verdict is first.verdict and again.value == first.value


def test_a_healthy_audience_looked_at_every_pass_is_rarely_paused() -> None:
    """300 schedules whose audience errs exactly as often as the baseline (2 %), looked at
    after every 100 released requests up to 60 times: the gate may look forever and still
    pauses a healthy step at most about ALPHA of the time (1 %), and lets nearly all pass.
    Seeded: the same counts every run."""
    rng = random.Random(7)
    paused = passed = 0
    for _ in range(300):
        slot = None
        n = e = bn = be = 0
        for _ in range(60):
            n, bn = n + 100, bn + 1_000
            e += sum(rng.random() < 0.02 for _ in range(100))
            be += sum(rng.random() < 0.02 for _ in range(1_000))
            result, slot = judge(window(n, e), window(bn, be), slot)
            if result.verdict in (Verdict.FAIL, Verdict.PASS):
                break
        paused += result.verdict is Verdict.FAIL
        passed += result.verdict is Verdict.PASS
    assert paused <= 6  # 2 % of 300, twice ALPHA: the seeded run pauses 1
    assert passed >= 270


def test_a_stored_test_that_is_not_the_gates_starts_afresh() -> None:
    """The gate keeps four totals; a slot with any other number (hand-edited, or another
    test's) is not fed to it, it starts fresh rather than failing the schedule."""
    released, baseline = window(2_000, 200), window(20_000, 200)
    fresh, _ = judge(released, baseline, None)
    odd = SequentialSlot(test={"anything": 1}, consumed=[5, 1])
    again, slot = judge(released, baseline, odd)
    assert again == fresh and len(slot.consumed) == 4
