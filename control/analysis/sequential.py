"""An anytime-valid test that the candidate's event rate is worse than the baseline's.

Events are errors, slow requests (above a latency edge frozen before the rollout), labelled
hallucinations or bad ratings. The analysis looks again every interval, so a fresh p-value
per look would roll back healthy candidates far too often; this test may be checked after
every interval, forever, and still fails a healthy candidate with probability at most alpha
(Ville's inequality).

Conditioned on the number of events in an interval, each event falls on the candidate with
probability ``pi(r) = r·n_c / (r·n_c + n_b)``, where ``n_c``, ``n_b`` are the interval's
requests and ``r`` the ratio of the candidate's rate to the baseline's. Under the null (the
candidate is at most ``r0`` times worse) that probability is ``pi(r0)``. The statistic is a
mixture, over worse ratios, of the likelihood ratios multiplied across intervals (Lindon &
Malek, two arms). ``r0`` above 1 tolerates a margin. It survives changes of the traffic split
between intervals and shocks common to both arms. ``FAIL`` when it reaches ``1/alpha``; the
mirror test (the candidate is at least ``r_pass`` times worse, rejected) gives ``PASS``.

Sticky users cluster events: a user who fails often sends many requests, all to the same
arm, so the counts are overdispersed against the binomial law the test assumes and a
healthy candidate is rolled back too often. ``design_effect`` (the variance inflation,
>= 1) raises each interval's likelihood ratio to the power ``1/design_effect`` (the quasi-
likelihood correction). With independent events that stays a supermartingale (Jensen), only
a more cautious one; ``bench/decisions.py`` measures what it buys under clustering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FAIL_GRID = (2.2,)
"""Worse ratios (times ``r0``) the FAIL test mixes over. One alternative near the smallest
regression worth catching gave the most power in the simulations (``control.analysis.simulate``):
with alpha 0.01 a 3x error rate at 5 % traffic is caught before 1,000 candidate requests in
96 % of runs, while healthy candidates are rolled back in under 1 %."""
PASS_GRID = (2 / 3, 1 / 2, 1 / 3)
"""Alternatives of the PASS test, as fractions of ``pass_ratio`` (1.5 → 1.0, 0.75, 0.5)."""


@dataclass(frozen=True)
class Interval:
    """One interval's new requests and events for each arm."""

    candidate_requests: int
    candidate_events: int
    baseline_requests: int
    baseline_events: int


@dataclass
class RateTest:
    """State of one metric's test over a rollout; feed it intervals, read its verdict."""

    alpha: float = 0.01
    r0: float = 1.0
    pass_ratio: float = 1.5
    pass_alpha: float = 0.05
    design_effect: float = 1.0
    fail_log_lr: list[float] = field(default_factory=lambda: [0.0] * len(FAIL_GRID))
    pass_log_lr: list[float] = field(default_factory=lambda: [0.0] * len(PASS_GRID))
    candidate_requests: int = 0
    candidate_events: int = 0
    baseline_requests: int = 0
    baseline_events: int = 0

    @classmethod
    def restore(cls, state: dict[str, Any]) -> RateTest:
        """A test from its stored state (``asdict``), sharing no list with it."""
        copied: dict[str, Any] = {}
        for key, value in state.items():
            copied[key] = list(value) if isinstance(value, list) else value
        return cls(**copied)

    def add(self, interval: Interval) -> None:
        n_c, n_b = interval.candidate_requests, interval.baseline_requests
        e_c, e_b = interval.candidate_events, interval.baseline_events
        self.candidate_requests += n_c
        self.candidate_events += e_c
        self.baseline_requests += n_b
        self.baseline_events += e_b
        if n_c <= 0 or n_b <= 0 or e_c + e_b == 0:
            return  # no events, or one arm idle: this interval says nothing
        temper = 1.0 / self.design_effect
        null_fail = _share(self.r0, n_c, n_b)
        for i, k in enumerate(FAIL_GRID):
            lr = _log_lr(_share(self.r0 * k, n_c, n_b), null_fail, e_c, e_b)
            self.fail_log_lr[i] += temper * lr
        null_pass = _share(self.pass_ratio, n_c, n_b)
        for i, k in enumerate(PASS_GRID):
            lr = _log_lr(_share(self.pass_ratio * k, n_c, n_b), null_pass, e_c, e_b)
            self.pass_log_lr[i] += temper * lr

    def fail_evidence(self) -> float:
        """The mixture likelihood ratio for "worse than r0": FAIL at 1/alpha."""
        return _mixture(self.fail_log_lr)

    def pass_evidence(self) -> float:
        return _mixture(self.pass_log_lr)

    def failed(self) -> bool:
        return self.fail_evidence() >= 1.0 / self.alpha

    def passed(self) -> bool:
        return self.pass_evidence() >= 1.0 / self.pass_alpha

    def verdict(self, min_requests: int) -> str:
        """``fail``, ``pass`` or ``inconclusive``; never a verdict below the minimum sample."""
        if self.candidate_requests < min_requests or self.baseline_requests < min_requests:
            return "inconclusive"
        if self.failed():
            return "fail"
        if self.passed():
            return "pass"
        return "inconclusive"


def _share(ratio: float, n_c: int, n_b: int) -> float:
    return ratio * n_c / (ratio * n_c + n_b)


def _log_lr(alternative: float, null: float, e_c: int, e_b: int) -> float:
    return e_c * math.log(alternative / null) + e_b * math.log((1 - alternative) / (1 - null))


def _mixture(log_lrs: list[float]) -> float:
    top = max(log_lrs)
    if top > 700:
        return math.inf
    return sum(math.exp(x) for x in log_lrs) / len(log_lrs)
