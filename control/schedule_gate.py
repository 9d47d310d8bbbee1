"""The analysis gate of a flag's schedule: may the next step go, given the traffic since the
previous one? The released audience's error rate against the route's baseline track's.

The runner looks every pass while a step waits, so the gate is the rollouts' anytime-valid
sequential test (``control.analysis.sequential``), fed each pass with the counts that arrived
since the last: looking again never raises its error rates (a fixed-level interval re-tested
on growing counts until it passes would, ../DESIGN.md). Its state lives in the schedule's
progress record, beside the counts, so a restarted control plane continues the same test.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from config.keys import Keys
from config.metrics import TrackWindow, merge_flag_windows, merge_windows
from config.records import SequentialSlot
from config.schedule_records import Accumulator, Analysis, GateVerdict
from config.thresholds import parse_threshold
from control import accumulate
from control.analysis.sequential import Interval, RateTest
from control.analysis.verdict import Assessment, Verdict, assess
from control.redis_client import RedisClient
from control.windows import WindowReader

MIN_REQUESTS = 100
"""Requests of each arm since the previous step below which the gate cannot judge."""
ALPHA = 0.01
"""How often a step whose audience is no worse than the baseline is paused, at most."""
PASS_RATIO = 1.5
"""The gate passes once the released error rate is shown below 1.5 × the baseline's."""
CONFIDENCE = 0.95
"""The level at which the gate passes (1 − the pass test's error rate)."""
CEILING = parse_threshold("< 5%", "error_rate")
"""The released audience's error rate limit when the baseline served too little to compare."""


def released_arm(flag: str) -> str:
    """The arm of a flag's released requests (``:`` is in no track name, so none collides)."""
    return f"flag:{flag}"


def fresh_test() -> SequentialSlot:
    test = RateTest(alpha=ALPHA, pass_ratio=PASS_RATIO, pass_alpha=1 - CONFIDENCE)
    return SequentialSlot(test=asdict(test), consumed=[0, 0, 0, 0])


def fresh_analysis(now: float) -> Analysis:
    """The gate's state for a period starting ``now``: its counts, its test, its verdict."""
    return Analysis(
        since=now,
        accumulator=Accumulator.model_validate(accumulate.new_accumulator(now)),
        verdict=None,
        test=fresh_test(),
    )


def stored_verdict(result: Assessment, at: float) -> GateVerdict:
    """``result`` as the record keeps it, with the time it was reached."""
    return GateVerdict.model_validate({**asdict(result), "verdict": result.verdict.value, "at": at})


def judge(
    released: TrackWindow, baseline: TrackWindow | None, slot: SequentialSlot | None
) -> tuple[Assessment, SequentialSlot]:
    """The gate's verdict from the totals since the previous step, and the test's new state.

    ``slot`` is the test's state from the last look (None: a fresh test); only what arrived
    since then is fed to it. ``fail`` when the released audience's error rate (every error
    class) is shown worse than the baseline's, ``pass`` when it is shown below
    ``PASS_RATIO`` × the baseline's, ``inconclusive`` in between or while either arm has
    fewer than ``MIN_REQUESTS``. When the baseline served fewer than ``MIN_REQUESTS`` (the
    flag released nearly everyone, or releases the baseline itself: ``baseline`` None) the
    released rate is held to ``CEILING`` instead, by a confidence sequence.
    """
    if slot is None or len(slot.consumed) != 4:
        slot = fresh_test()  # none yet, or not the gate's (four totals)
    n, errors = released.requests, sum(released.errors.values())
    if n < MIN_REQUESTS:
        return Assessment(
            "error_rate",
            Verdict.INCONCLUSIVE,
            errors / n if n else None,
            "",
            n,
            f"{n} released requests since the previous step, {MIN_REQUESTS} needed",
            needed=MIN_REQUESTS - n,
        ), slot
    if baseline is None or baseline.requests < MIN_REQUESTS:
        result = assess("error_rate", CEILING, released, CONFIDENCE)
        why = f"{result.reason} (too little baseline traffic to compare)"
        return replace(result, reason=why), slot
    b_errors = sum(baseline.errors.values())
    totals = [n, errors, baseline.requests, b_errors]
    delta = [max(0, total - was) for total, was in zip(totals, slot.consumed, strict=True)]
    test = RateTest.restore(slot.test)
    test.add(Interval(*delta))
    verdict = {"fail": Verdict.FAIL, "pass": Verdict.PASS}.get(
        test.verdict(MIN_REQUESTS), Verdict.INCONCLUSIVE
    )
    fail_at, pass_at = 1 / test.alpha, 1 / test.pass_alpha
    figures = (
        f"released {errors}/{n} ({_percent(errors, n)}) vs baseline "
        f"{b_errors}/{baseline.requests} ({_percent(b_errors, baseline.requests)}); evidence "
        f"{test.fail_evidence():.3g} of {fail_at:g} that it is worse, "
        f"{test.pass_evidence():.3g} of {pass_at:g} that it is below {PASS_RATIO:g} × the baseline"
    )
    reason = {
        Verdict.FAIL: f"error rate worse than the baseline's: {figures}",
        Verdict.PASS: f"error rate below {PASS_RATIO:g} × the baseline's: {figures}",
    }.get(verdict, f"not yet clear: {figures}")
    against = f"below {PASS_RATIO:g} × the baseline's"
    result = Assessment("error_rate", verdict, test.fail_evidence(), against, n, reason)
    return result, SequentialSlot(test=asdict(test), consumed=totals)


def _percent(events: int, n: int) -> str:
    return f"{100 * events / n:.2g} %" if n else "none"


class FlagWindows(WindowReader):
    """A route's windows, where the requests ``flag`` released also count as one more arm,
    ``released_arm(flag)`` (their track counts them in its totals as well)."""

    def __init__(self, redis: RedisClient, keys: Keys, flag: str) -> None:
        super().__init__(redis, keys)
        self._flag = flag

    def merge(self, fields: dict[str, str]) -> dict[tuple[str, str], TrackWindow]:
        merged = merge_windows([fields])
        for (flag, _, version), counts in merge_flag_windows([fields]).items():
            if flag == self._flag:
                key = (released_arm(flag), version)
                merged[key] = accumulate.add(merged.get(key, TrackWindow()), counts)
        return merged
