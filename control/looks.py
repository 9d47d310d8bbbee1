"""One look at a running canary phase: what is judged, on which counts, with which figures.

Counts (pure; the runner reads them from Redis):
- threshold checks (success criteria, ``canary_metrics``) and ``rollback_if`` conditions see
  the candidate's requests since the phase's first moment: the first look after every proxy
  replica acked the phase's weights, minus what the windows already held then. Their bounds
  are confidence sequences, valid however often they are looked at within the phase;
- the comparisons with the baseline see both arms since the rollout's first such moment,
  fed interval by interval into their sequential tests (``control.analysis.sequential``).

Each verdict is kept (``config.records.StoredVerdict``) with the figures a person needs: the candidate's and the
baseline's value, the bound that decided, the samples still needed and, at the phase's rate
so far, how long that takes (``eta_s``).

A shadow phase (``config.phases``) is judged the same way on the candidate's shadow copies:
its own ``criteria`` replace the plan's success criteria, and its comparisons with the
baseline's live requests keep their state in slots of their own (``shadow:error_rate``,
``shadow:capacity`` …), so the live phases' tests start fresh; each of the two runs of a
comparison has half its alpha (``fresh_tests``), so the false-rollback budget is the plan's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from config.metrics import TrackWindow, shadow_arm
from config.plans import CanaryPlan
from config.records import SequentialSlot, StoredVerdict
from config.thresholds import USAGE_METRICS, Threshold, parse_threshold
from control.analysis import capacity, usage
from control.analysis.sequential import Interval, RateTest
from control.analysis.verdict import Assessment, Verdict, assess, breached, measure

MIN_REQUESTS = 100
"""Requests each arm needs before a comparison with the baseline may say pass or fail."""
MIN_RATINGS = 30

TESTS: dict[str, float] = {
    "error_rate": 0.01,
    "slow_requests": 0.002,
    "hallucinations": 0.001,
    "bad_ratings": 0.001,
}
"""Each comparison with the baseline and its share of the false-rollback budget (alpha). A
healthy candidate is rolled back by one of them in at most 1.4 % of rollouts (their sum,
plus ``USAGE_ALPHA`` for each tokens or cost criterion relative to the baseline); the
simulations in ``bench/decisions.py`` measure under 1 % for the four together. The quality
tests get little alpha: their signals are sparse, and the regressions worth a rollback
(hallucinations several times as frequent) still reach 1/alpha within a few looks."""

_COUNTS: dict[str, Callable[[TrackWindow, int | None], tuple[int, int]]] = {
    "error_rate": lambda w, _: (w.requests, sum(w.errors.values())),
    # Requests slower than the baseline's p95 bucket, frozen when the rollout starts.
    "slow_requests": lambda w, edge: (w.requests, sum(w.latency[(edge or 0) + 1 :])),
    "hallucinations": lambda w, _: (
        w.feedback.get("hallucination_yes", 0) + w.feedback.get("hallucination_no", 0),
        w.feedback.get("hallucination_yes", 0),
    ),
    "bad_ratings": lambda w, _: (w.feedback.get("rating_n", 0), w.feedback.get("rating_bad", 0)),
}
USAGE_ALPHA = 0.001
"""The share of the false-rollback budget of each ``tokens_per_request`` or
``cost_per_request`` criterion relative to the baseline (``< baseline + 10%``): its two
confidence sequences (candidate and baseline) take half each."""
_MINIMUM = {"error_rate": MIN_REQUESTS, "slow_requests": MIN_REQUESTS}


SHADOW_SLOT = "shadow:"
"""The prefix of the ``tests`` slots a shadow phase's comparisons and capacity hold use."""


def candidate_arm(plan: CanaryPlan, phase: int) -> str:
    """The arm the candidate is judged on in ``phase``: its shadow copies in a shadow phase."""
    track = plan.candidate.track
    return shadow_arm(track) if plan.phases[phase].shadow is not None else track


def fresh_tests(shadowed: bool = False) -> dict[str, SequentialSlot]:
    """The comparisons' state before any look. A plan that opens with a shadow phase runs
    each comparison twice (on the copies, then on live traffic): each run gets half of the
    test's alpha, so the false-rollback budget stays the plan's."""
    share = 2 if shadowed else 1
    slots = {
        name: SequentialSlot(test=asdict(RateTest(alpha=alpha / share)), consumed=[0, 0, 0, 0])
        for name, alpha in TESTS.items()
    }
    if shadowed:
        slots |= {SHADOW_SLOT + name: slot for name, slot in slots.items()}
    return slots


def opens_with_shadow(plan: Mapping[str, Any]) -> bool:
    """The plan (as a rollout record stores it) opens with a shadow phase."""
    phases = plan.get("phases") or [{}]
    return bool(phases[0].get("shadow"))


def criteria(plan: CanaryPlan) -> list[tuple[str, Threshold, bool]]:
    """The success criteria, each once: (metric, threshold, secondary). ``canary_metrics``
    and ``config.success_criteria`` often repeat each other (the seed's plan does)."""
    found: dict[tuple[str, str], tuple[str, Threshold, bool]] = {}
    checks = [(c.name, c.threshold, False) for c in plan.canary_metrics.primary]
    checks += [(c.name, c.threshold, True) for c in plan.canary_metrics.secondary]
    checks += [(m, t, False) for m, t in plan.config.success_criteria.items()]
    for metric, text, secondary in checks:
        threshold = parse_threshold(text, metric)
        key = (metric, f"{threshold.op}{threshold.value!r}")
        if key in found:  # required if any of its mentions requires it
            secondary = secondary and found[key][2]
            threshold = found[key][1]
        found[key] = (metric, threshold, secondary)
    return list(found.values())


def phase_criteria(plan: CanaryPlan, phase: int) -> list[tuple[str, Threshold, bool]]:
    """What ``phase`` must meet: a shadow phase its own ``criteria`` (each required), a live
    phase the plan's (``criteria``)."""
    if plan.phases[phase].shadow is None:
        return criteria(plan)
    return [(m, parse_threshold(t, m), False) for m, t in plan.phases[phase].criteria.items()]


def judge_phase(
    plan: CanaryPlan,
    phase: int,
    candidate: TrackWindow,
    since: tuple[TrackWindow, TrackWindow] | None = None,
) -> tuple[list[Assessment], list[Assessment]]:
    """(rollback conditions, success criteria) of a phase, from its own counts; the criteria
    relative to the baseline from ``since`` (both arms since the rollout began)."""
    confidence, d = plan.comparison.confidence, plan.comparison.design_effect
    rollback = [
        _usage(plan, c.metric, c.threshold, candidate, since, condition=True)
        if c.metric in USAGE_METRICS
        else breached(c.metric, c.threshold, candidate, confidence, design_effect=d)
        for c in plan.phases[phase].rollback_if
    ]
    success = []
    for metric, threshold, secondary in phase_criteria(plan, phase):
        if metric in USAGE_METRICS:
            result = _usage(plan, metric, threshold, candidate, since, condition=False)
        else:
            result = assess(metric, threshold, candidate, confidence, design_effect=d)
        # Quality signals arrive slowly: without them a phase is not held forever.
        if (
            secondary
            and result.verdict is Verdict.INCONCLUSIVE
            and not plan.canary_metrics.hold_for_secondary
        ):
            continue
        success.append(result)
    return rollback, success


def _usage(
    plan: CanaryPlan,
    metric: str,
    threshold: Threshold,
    candidate: TrackWindow,
    since: tuple[TrackWindow, TrackWindow] | None,
    *,
    condition: bool,
) -> Assessment:
    c = plan.comparison
    cap = c.max_tokens_per_request
    if threshold.relative:
        cand, base = since if since is not None else (TrackWindow(), TrackWindow())
        return usage.versus_baseline(
            metric,
            threshold,
            usage.sums(metric, cand, plan.pricing.get("candidate"), cap),
            usage.sums(metric, base, plan.pricing.get("baseline"), cap),
            condition=condition,
            alpha=USAGE_ALPHA,
            pass_alpha=1 - c.confidence,
            design_effect=c.design_effect,
        )
    sums = usage.sums(metric, candidate, plan.pricing.get("candidate"), cap)
    judge = usage.breached if condition else usage.assess
    return judge(metric, threshold, sums, c.confidence, design_effect=c.design_effect)


@dataclass(frozen=True)
class Counts:
    """What one look reads from the fleet's windows: each arm since the rollout's first
    counted moment and since the phase's, and how long those periods are."""

    since: tuple[TrackWindow, TrackWindow]
    """(candidate, baseline) since the rollout's counts began."""
    phase: tuple[TrackWindow, TrackWindow]
    """(candidate, baseline) since the phase's counts began."""
    rollout_s: float
    phase_s: float


@dataclass(frozen=True)
class Look:
    """A look's judgement: what may roll back, what the phase must meet, the verdicts as
    stored, and the sequential tests' new state (the record's ``tests``)."""

    rollback: tuple[Assessment, ...]
    success: tuple[Assessment, ...]
    verdicts: list[StoredVerdict]
    tests: dict[str, SequentialSlot]
    hold: tuple[Assessment, ...] = ()
    """Why the phase holds whatever the verdicts say (the candidate is rate-limited)."""


def look(
    plan: CanaryPlan,
    phase: int,
    latency_edge: int | None,
    tests: Mapping[str, SequentialSlot],
    counts: Counts,
) -> Look:
    """One look at a running phase, pure: the same plan, tests and counts give the same look,
    and ``tests`` is left as it was (the new state is in the answer)."""
    new_tests = dict(tests)
    hold = None
    prefix = SHADOW_SLOT if plan.phases[phase].shadow is not None else ""
    if not plan.comparison.count_429_as_errors:
        hold, new_tests[prefix + capacity.SLOT] = capacity.limited(
            tests.get(prefix + capacity.SLOT), counts.since[0], plan.capacity.rate()
        )
        counts = _served(counts)
    (cand_since, base_since), (cand_phase, base_phase) = counts.since, counts.phase
    rollback, success = judge_phase(plan, phase, cand_phase, counts.since)
    compared: list[Assessment] = []
    if plan.comparison.method == "statistical":
        for name in TESTS:
            if name == "slow_requests" and latency_edge is None:
                continue
            result, new_tests[prefix + name] = compare(
                plan, _slot(tests, prefix + name), latency_edge, cand_since, base_since, name
            )
            compared.append(result)
    base = _baselines(plan, base_phase, base_since)
    verdicts = [
        *(record_verdict(v, "rollback", base(v), counts.phase_s) for v in rollback),
        *(record_verdict(v, "rollback", None, counts.rollout_s) for v in compared),
        *(record_verdict(v, "success", base(v), counts.phase_s) for v in success),
        *([record_verdict(hold, "success", None, counts.phase_s)] if hold else []),
    ]
    held = (hold,) if hold is not None else ()
    return Look((*rollback, *compared), tuple(success), verdicts, new_tests, held)


def _served(counts: Counts) -> Counts:
    served = capacity.served
    return replace(
        counts,
        since=(served(counts.since[0]), served(counts.since[1])),
        phase=(served(counts.phase[0]), served(counts.phase[1])),
    )


def _slot(tests: Mapping[str, SequentialSlot], name: str) -> SequentialSlot:
    """The test's state; a fresh one for a record stored before the test existed."""
    found = tests.get(name)
    if found is not None:
        return found
    shadow = name.startswith(SHADOW_SLOT)  # only a plan with a shadow phase has these
    alpha = TESTS[name.removeprefix(SHADOW_SLOT)] / (2 if shadow else 1)
    return SequentialSlot(test=asdict(RateTest(alpha=alpha)), consumed=[0, 0, 0, 0])


def _baselines(
    plan: CanaryPlan, phase: TrackWindow, since: TrackWindow
) -> Callable[[Assessment], float | None]:
    """The baseline's value of a verdict's metric, over the period the verdict judged."""

    def value(a: Assessment) -> float | None:
        if a.metric not in USAGE_METRICS:
            return measure(a.metric, phase)[0]
        relative = parse_threshold(a.threshold, a.metric).relative
        return usage.value(a.metric, since if relative else phase, plan.pricing.get("baseline"))

    return value


def compare(
    plan: CanaryPlan,
    slot: SequentialSlot,
    edge: int | None,
    candidate: TrackWindow,
    baseline: TrackWindow,
    name: str,
) -> tuple[Assessment, SequentialSlot]:
    """Feed one sequential test the counts that arrived since its last look: its verdict,
    and the test's new state (``slot`` is left as it was)."""
    confidence = plan.comparison.confidence
    c_n, c_e = _COUNTS[name](candidate, edge)
    b_n, b_e = _COUNTS[name](baseline, edge)
    totals = [c_n, c_e, b_n, b_e]
    delta = [max(0, total - was) for total, was in zip(totals, slot.consumed, strict=True)]
    test = RateTest.restore(slot.test)
    test.pass_alpha = 1 - confidence
    test.design_effect = plan.comparison.design_effect
    test.add(Interval(delta[0], delta[1], delta[2], delta[3]))
    new_slot = SequentialSlot(test=asdict(test), consumed=totals)
    minimum = _MINIMUM.get(name, MIN_RATINGS)
    verdict = {"fail": Verdict.FAIL, "pass": Verdict.PASS}.get(
        test.verdict(minimum), Verdict.INCONCLUSIVE
    )
    evidence = test.fail_evidence()
    c_rate = _percent(test.candidate_events, test.candidate_requests)
    b_rate = _percent(test.baseline_events, test.baseline_requests)
    unit = "requests" if name in _MINIMUM else "labels"
    needed = None
    if verdict is Verdict.INCONCLUSIVE:
        short = minimum - min(test.candidate_requests, test.baseline_requests)
        needed = short if short > 0 else None
    result = Assessment(
        f"{name}_vs_baseline",
        verdict,
        evidence,
        f"evidence >= {1 / test.alpha:g}",
        test.candidate_requests,
        f"{test.candidate_events} of {test.candidate_requests} {unit} ({c_rate}) against the "
        f"baseline's {test.baseline_events} of {test.baseline_requests} ({b_rate}); "
        f"evidence {evidence:.3g} of {1 / test.alpha:g} to roll back",
        needed=needed,
    )
    return result, new_slot


def _percent(events: int, n: int) -> str:
    return f"{100 * events / n:.2g} %" if n else "none yet"


def record_verdict(
    a: Assessment, role: str, baseline: float | None, elapsed_s: float
) -> StoredVerdict:
    """A verdict as stored with the rollout and its looks: the figures a person reads.

    ``baseline`` is the baseline's value over the same period as the verdict's sample, and
    ``elapsed_s`` that period's length, from which the time still needed is estimated."""
    out = {**asdict(a), "verdict": a.verdict.value, "role": role}
    out["baseline"] = baseline
    eta = None
    if a.needed is not None and a.sample > 0 and elapsed_s > 0:
        eta = round(a.needed * elapsed_s / a.sample, 1)
    out["eta_s"] = eta
    return StoredVerdict.model_validate(out)
