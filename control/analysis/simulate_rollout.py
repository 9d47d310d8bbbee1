"""Seeded simulations of whole canary rollouts over the real analysis and strategy code.

Each look (every ``look_s`` seconds) draws the requests of both arms at the candidate's
current share, then judges them as the runner does (``control.looks``): the phase's
``rollback_if`` conditions (``breached``) and success criteria (``assess``) on the
candidate's counts since the phase started, and the four comparisons with the baseline
(``RateTest``, fed each look's new counts since the rollout started); the pure state machine
``control.strategies.canary`` decides. Approvals and manual promotions are granted at once.

Requests are independent, or sent by sticky users (``Users``): each user sends 1 to
``most_requests`` requests, one every ``gap_s`` seconds on average, always to the arm its
hash falls in at the time (``bucket < share``), and fails with its own propensity drawn from
a Beta law of the arm's mean error rate and concentration ``a + b`` — the overdispersion the
tests must allow for. Latency, labels and ratings stay independent per request.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields

from config.metrics import TrackWindow, bucket_index_ms
from config.plans import CanaryPlan
from config.thresholds import parse_threshold
from control.analysis.sequential import Interval, RateTest
from control.analysis.simulate import poisson
from control.analysis.verdict import Assessment, Verdict, assess, breached
from control.strategies import canary
from control.strategies.canary import FINAL, Observation, SetWeights, State, Status

FAST_MS, SLOW_MS, TAIL_MS = 800.0, 1400.0, 2500.0
"""Where simulated requests land: below the baseline's p95 edge, above it but below a
2,000 ms threshold's straddling bucket (1,722–2,048 ms), and above that bucket."""
EDGE = bucket_index_ms(FAST_MS)
"""The frozen latency edge of the slow-requests comparison: the fast requests' bucket."""


@dataclass(frozen=True)
class Arm:
    """Per-request probabilities of one version."""

    errors: float = 0.005
    slow: float = 0.05
    """Slower than the baseline's p95 edge (the slow-requests comparison's event)."""
    tail: float = 0.01
    """Slower than 2,048 ms (part of ``slow``): what ``latency_p95 < 2000ms`` judges."""
    hallucinations: float = 0.05
    bad_ratings: float = 0.10


@dataclass(frozen=True)
class Users:
    most_requests: int = 50
    concentration: float = 5.0
    """``a + b`` of the Beta law of a user's error propensity (smaller: more dispersed)."""
    gap_s: float = 10.0


@dataclass(frozen=True)
class Traffic:
    rate: float
    """Requests a second, both arms together."""
    look_s: float = 10.0
    judged: float = 0.10
    """Share of answers labelled for hallucination."""
    rated: float = 0.05
    users: Users | None = None


@dataclass(frozen=True)
class Analysis:
    """What the runner passes to the tests: alphas of the comparisons and the corrections."""

    tests: Mapping[str, float]
    min_requests: int = 100
    min_ratings: int = 30
    design_effect: float = 1.0
    """Passed to the comparisons (``RateTest``)."""
    r0: float = 1.0
    threshold_design_effect: float = 1.0
    """Passed to the threshold checks (``assess``, ``breached``)."""


@dataclass(frozen=True)
class Result:
    status: Status
    """PROMOTED, ROLLED_BACK or PAUSED (RUNNING if the horizon passed first)."""
    seconds: float
    cause: str
    """What rolled back or paused the rollout (the check's metric); empty when promoted."""


@dataclass
class _Counts:
    requests: int = 0
    errors: int = 0
    slow: int = 0
    tail: int = 0
    judged: int = 0
    hallucinations: int = 0
    rated: int = 0
    bad: int = 0

    def add(self, other: _Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def window(self) -> TrackWindow:
        w = TrackWindow(requests=self.requests)
        w.errors["upstream_5xx"] = self.errors
        w.latency[EDGE] = self.requests - self.slow
        w.latency[bucket_index_ms(SLOW_MS)] = self.slow - self.tail
        w.latency[bucket_index_ms(TAIL_MS)] = self.tail
        w.feedback = {
            "hallucination_yes": self.hallucinations,
            "hallucination_no": self.judged - self.hallucinations,
            "rating_n": self.rated,
            "rating_bad": self.bad,
        }
        return w


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact for rare events (geometric skips, cost ~ the events), normal beyond 30 of them."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p > 30:
        return min(n, max(0, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))
    log_q, k, i = math.log1p(-p), 0, 0
    while True:
        i += int(math.log(1.0 - rng.random()) / log_q) + 1
        if i > n:
            return k
        k += 1


class _Population:
    """Sticky users in steady state: ``rate·gap_s`` of them active, each sending one request
    every ``gap_s`` on average; a finished user is replaced by a new one."""

    def __init__(self, rng: random.Random, traffic: Traffic, base: Arm, cand: Arm) -> None:
        assert traffic.users is not None
        self._rng, self._users, self._arms = rng, traffic.users, (base, cand)
        self._per_look = traffic.look_s / traffic.users.gap_s
        self._active = [self._new() for _ in range(poisson(rng, traffic.rate * self._users.gap_s))]

    def _new(self) -> list[float]:
        u, rng = self._users, self._rng
        props = [
            rng.betavariate(a.errors * u.concentration, (1 - a.errors) * u.concentration)
            if 0 < a.errors < 1
            else a.errors
            for a in self._arms
        ]
        return [rng.random(), float(rng.randint(1, u.most_requests)), *props]

    def look(self, share: float) -> tuple[tuple[int, int], tuple[int, int]]:
        """(requests, errors) of the baseline and of the candidate in one look."""
        sent, failed = [0, 0], [0, 0]
        for i, user in enumerate(self._active):
            m = min(int(user[1]), poisson(self._rng, self._per_look))
            if m == 0:
                continue
            arm = 1 if user[0] < share else 0
            sent[arm] += m
            failed[arm] += binomial(self._rng, m, user[2 + arm])
            user[1] -= m
            if user[1] <= 0:
                self._active[i] = self._new()
        return (sent[0], failed[0]), (sent[1], failed[1])


def _draw(rng: random.Random, arm: Arm, traffic: Traffic, n: int, errors: int | None) -> _Counts:
    slow = binomial(rng, n, arm.slow)
    judged, rated = binomial(rng, n, traffic.judged), binomial(rng, n, traffic.rated)
    return _Counts(
        requests=n,
        errors=binomial(rng, n, arm.errors) if errors is None else errors,
        slow=slow,
        tail=binomial(rng, slow, arm.tail / arm.slow) if arm.slow > 0 else 0,
        judged=judged,
        hallucinations=binomial(rng, judged, arm.hallucinations),
        rated=rated,
        bad=binomial(rng, rated, arm.bad_ratings),
    )


_PAIRS = {
    "error_rate": ("requests", "errors"),
    "slow_requests": ("requests", "slow"),
    "hallucinations": ("judged", "hallucinations"),
    "bad_ratings": ("rated", "bad"),
}


def _comparisons(
    tests: dict[str, RateTest], analysis: Analysis, cand: _Counts, base: _Counts
) -> list[Assessment]:
    failed = []
    for name, test in tests.items():
        size, event = _PAIRS[name]
        test.add(
            Interval(
                getattr(cand, size), getattr(cand, event), getattr(base, size), getattr(base, event)
            )
        )
        minimum = analysis.min_requests if size == "requests" else analysis.min_ratings
        if test.verdict(minimum) == "fail":
            failed.append(Assessment(f"{name}_vs_baseline", Verdict.FAIL, None, "", 0, name))
    return failed


def run_rollout(
    rng: random.Random,
    plan: CanaryPlan,
    traffic: Traffic,
    analysis: Analysis,
    baseline: Arm,
    candidate: Arm,
) -> Result:
    """One rollout from start to its end (or the sum of the phases' max_durations)."""
    confidence = plan.comparison.confidence
    tests = {
        name: RateTest(alpha=alpha, r0=analysis.r0, design_effect=analysis.design_effect)
        for name, alpha in analysis.tests.items()
    }
    primary = [(c.name, parse_threshold(c.threshold, c.name)) for c in plan.canary_metrics.primary]
    primary += [(m, parse_threshold(t, m)) for m, t in plan.config.success_criteria.items()]
    secondary = [
        (c.name, parse_threshold(c.threshold, c.name)) for c in plan.canary_metrics.secondary
    ]
    users = _Population(rng, traffic, baseline, candidate) if traffic.users else None
    horizon = sum(p.deadline() for p in plan.phases) + traffic.look_s
    state, actions = canary.start(plan, State(), 0.0)
    state, share, since = canary.written(state, 1), actions[-1].candidate / 100, _Counts()
    now, cause = 0.0, ""
    while state.status not in FINAL and state.status is not Status.PAUSED and now < horizon:
        now += traffic.look_s
        n = poisson(rng, traffic.rate * traffic.look_s)
        if users is None:
            n_c = binomial(rng, n, share)
            base = _draw(rng, baseline, traffic, n - n_c, None)
            cand = _draw(rng, candidate, traffic, n_c, None)
        else:
            (n_b, e_b), (n_c, e_c) = users.look(share)
            base = _draw(rng, baseline, traffic, n_b, e_b)
            cand = _draw(rng, candidate, traffic, n_c, e_c)
        since.add(cand)
        window, d = since.window(), analysis.threshold_design_effect
        rollback = [
            breached(c.metric, c.threshold, window, confidence, design_effect=d)
            for c in plan.phases[state.phase].rollback_if
        ]
        rollback += _comparisons(tests, analysis, cand, base)
        success = [assess(m, t, window, confidence, design_effect=d) for m, t in primary]
        for m, t in secondary:
            result = assess(m, t, window, confidence, design_effect=d)
            if result.verdict is not Verdict.INCONCLUSIVE or plan.canary_metrics.hold_for_secondary:
                success.append(result)
        state, actions = canary.tick(plan, state, Observation(now, True, rollback, success))
        cause = _cause(state.status, rollback, success)
        if state.status is Status.AWAITING_APPROVAL:
            state, actions = canary.command(plan, state, "approve", now)
        elif state.status is Status.AWAITING_PROMOTION:
            state, actions = canary.command(plan, state, "promote", now)
        weights = [a for a in actions if isinstance(a, SetWeights)]
        if weights and state.status is Status.RUNNING:
            share, since = weights[-1].candidate / 100, _Counts()
            state = canary.written(state, (state.generation or 1) + 1)
    return Result(state.status, now, cause if state.status is not Status.RUNNING else "")


def _cause(status: Status, rollback: list[Assessment], success: list[Assessment]) -> str:
    """Which checks stopped the rollout at this look (empty while it goes on or is promoted)."""
    if status is Status.ROLLED_BACK:
        failed = [a for a in rollback if a.verdict is Verdict.FAIL]
        failed = failed or [a for a in success if a.verdict is Verdict.FAIL]
        return ", ".join(f"{a.metric} {a.threshold}".strip() for a in failed) or "inconclusive"
    if status is Status.PAUSED:
        return ", ".join(a.metric for a in success if a.verdict is Verdict.INCONCLUSIVE)
    return ""


def run_many(
    runs: int,
    seed: int,
    plan: CanaryPlan,
    traffic: Traffic,
    analysis: Analysis,
    baseline: Arm,
    candidate: Arm,
) -> list[Result]:
    rng = random.Random(seed)
    return [run_rollout(rng, plan, traffic, analysis, baseline, candidate) for _ in range(runs)]


def make_plan(
    phases: list[tuple[float, float | None, float | None]],
    criteria: Mapping[str, str],
    *,
    on_inconclusive: str = "pause",
    rollback_if: tuple[str, ...] = (),
    last_needs_approval: bool = False,
) -> CanaryPlan:
    """A canary plan built in code: ``phases`` are (traffic %, duration s, max_duration s)."""
    doc = {
        "route": "sim",
        "candidate": {"version": "v2", "upstreams": ["http://127.0.0.1:1"]},
        "phases": [
            {
                "name": f"{traffic:g}%",
                "traffic": traffic,
                "duration": duration,
                "max_duration": most,
                "rollback_if": list(rollback_if),
                "requires_approval": last_needs_approval and i == len(phases) - 1,
            }
            for i, (traffic, duration, most) in enumerate(phases)
        ],
        "canary_metrics": {
            "primary": [{"name": m, "threshold": t, "window": 60} for m, t in criteria.items()],
            "secondary": [],
        },
        "on_inconclusive": on_inconclusive,
    }
    return CanaryPlan.model_validate(doc)
