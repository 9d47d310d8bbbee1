"""The canary strategy as pure transitions: state and observations in, new state and actions out.

A runner (not here) measures, calls ``tick`` every analysis interval with what it saw, and
carries out the actions (``SetWeights``); people and pipelines call ``command`` (approve,
promote, pause, resume, abort). Nothing here reads a clock or Redis, so every path is stepped
by hand in tests.

Rules:
- A phase starts by setting its weights; it is judged only once every live proxy replica has
  acked the generation that carries them.
- Any failed ``rollback_if`` condition or statistical test rolls back at once: the candidate's
  share goes to 0 and the rollout ends in ``rolled_back`` (retry by starting a new one).
- A failed look (a ``rollback_if`` condition or a comparison) rolls back once the plan's
  ``limits`` on failures in a row or in all are reached (1 and 1 by default: at once).
- Metrics that cannot be read are errors, not failures; ``limits.consecutive_errors`` in a row
  (4) or ``limits.total_errors`` in all (20) roll back.
- When a phase's duration has passed: all success criteria pass → the next phase (after an
  approval when it ``requires_approval``, after ``promote`` when the phase is not
  ``auto_promote``); any criterion failing → roll back; inconclusive → hold and look again,
  until the phase's ``max_duration``: then the plan's ``on_inconclusive`` (pause with the
  reason, go on, or roll back). A phase whose weights no replica set acks by then pauses.
- While the candidate is rate-limited (``Observation.hold``) the phase holds: nothing
  advances or rolls it back; at its ``max_duration`` ``on_inconclusive`` applies.
- After the last phase the rollout is ``promoted``.
- A shadow phase (the first, ``config.phases``) sets the route's ``shadow`` to the candidate
  with its weights (candidate 0 %); every later weight change of such a plan (the next
  phase, a rollback, an abort) removes it in the same write. A pause leaves it mirroring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from config.plans import CanaryPlan
from config.shadow import Shadow
from control.analysis.verdict import Assessment, Verdict


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_PROMOTION = "awaiting_promotion"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    COMPLETED = "completed"
    """An A/B test that ran its course; its report is kept with it."""


FINAL = frozenset({Status.PROMOTED, Status.ROLLED_BACK, Status.ABORTED, Status.COMPLETED})


@dataclass(frozen=True)
class SetWeights:
    """Give the candidate ``candidate`` percent and the baseline the rest."""

    candidate: float
    shadow: Shadow | None = None
    """Mirror to the candidate as this says, in the same write (entering a shadow phase)."""
    end_shadow: bool = False
    """Stop mirroring to the candidate in the same write (the plan opened with a shadow
    phase, and this write leaves it)."""


@dataclass(frozen=True)
class Event:
    at: float
    kind: str
    detail: str


@dataclass(frozen=True)
class State:
    status: Status = Status.PENDING
    phase: int = 0
    phase_started_at: float = 0.0
    generation: int | None = None
    """The routing generation that carries the current phase's weights, once written."""
    error_streak: int = 0
    errors: int = 0
    failure_streak: int = 0
    failures: int = 0
    paused_from: Status | None = None
    history: tuple[Event, ...] = ()

    def note(self, at: float, kind: str, detail: str) -> State:
        return replace(self, history=(*self.history, Event(at, kind, detail)))


@dataclass(frozen=True)
class Observation:
    now: float
    acked: bool
    """Every live proxy replica routes by ``State.generation``."""
    rollback: Sequence[Assessment] = ()
    """Rollback conditions and the statistical comparison: any FAIL rolls back."""
    success: Sequence[Assessment] = field(default_factory=tuple)
    """Success criteria, judged when the phase's time is up."""
    hold: Sequence[Assessment] = ()
    """Why the phase holds whatever the other verdicts say (the candidate is rate-limited):
    no advance, no rollback, until its ``max_duration``, when ``on_inconclusive`` applies."""


class CommandRefused(Exception):
    """The command does not apply in the rollout's current state (HTTP 409)."""

    def __init__(self, command: str, status: Status) -> None:
        super().__init__(f"cannot {command} a rollout that is {status.value}")
        self.status = status


def start(plan: CanaryPlan, state: State, now: float) -> tuple[State, list[SetWeights]]:
    if state.status is not Status.PENDING:
        raise CommandRefused("start", state.status)
    state = replace(state, status=Status.RUNNING, phase=0, phase_started_at=now)
    return state.note(now, "phase", plan.phases[0].said()), [weights_of(plan, 0)]


def weights_of(plan: CanaryPlan, index: int) -> SetWeights:
    """The write that enters phase ``index``: its weights, and the mirroring of a shadow
    phase set, or ended when the plan opened with one."""
    phase = plan.phases[index]
    if phase.shadow is not None:
        return SetWeights(phase.traffic, shadow=phase.shadow.for_track(plan.candidate.track))
    return SetWeights(phase.traffic, end_shadow=has_shadow(plan))


def has_shadow(plan: CanaryPlan) -> bool:
    return plan.phases[0].shadow is not None


def written(state: State, generation: int) -> State:
    """The runner wrote the phase's weights; the phase is judged once this is acked."""
    return replace(state, generation=generation)


def tick(plan: CanaryPlan, state: State, seen: Observation) -> tuple[State, list[SetWeights]]:
    if state.status is not Status.RUNNING or state.generation is None:
        return state, []
    if not seen.acked:
        if seen.now - state.phase_started_at >= plan.phases[state.phase].deadline():
            why = (
                f"not every proxy replica applied the phase's weights (generation "
                f"{state.generation}) within its max_duration"
            )
            return _pause(state, seen.now, why), []
        return state, []
    if seen.hold:
        return _held(plan, state, seen)
    limits = plan.limits
    failed = [a for a in seen.rollback if a.verdict is Verdict.FAIL]
    if failed:
        reason = "; ".join(said(a) for a in failed)
        state = replace(state, failure_streak=state.failure_streak + 1, failures=state.failures + 1)
        if state.failure_streak >= limits.consecutive_failures:
            return _roll_back(plan, state, seen.now, reason)
        if state.failures >= limits.total_failures:
            return _roll_back(plan, state, seen.now, f"{reason} ({state.failures} failed looks)")
        return state.note(
            seen.now,
            "failure",
            f"{reason} ({state.failure_streak} in a row, {state.failures} in all)",
        ), []
    errors = [a for a in (*seen.rollback, *seen.success) if a.verdict is Verdict.ERROR]
    if errors:
        state = replace(state, error_streak=state.error_streak + 1, errors=state.errors + 1)
        if state.error_streak >= limits.consecutive_errors:
            return _roll_back(
                plan, state, seen.now, f"metrics unavailable {state.error_streak} times in a row"
            )
        if state.errors >= limits.total_errors:
            return _roll_back(
                plan, state, seen.now, f"metrics unavailable {state.errors} times in all"
            )
        return state.note(seen.now, "error", errors[0].reason), []
    state = replace(state, error_streak=0, failure_streak=0)
    phase = plan.phases[state.phase]
    if phase.duration is not None and seen.now - state.phase_started_at < phase.duration:
        return state, []
    if any(a.verdict is Verdict.FAIL for a in seen.success):
        reason = "; ".join(said(a) for a in seen.success if a.verdict is Verdict.FAIL)
        return _roll_back(plan, state, seen.now, f"success criteria missed: {reason}")
    pending = [a for a in seen.success if a.verdict is Verdict.INCONCLUSIVE]
    if not pending:
        return _phase_done(plan, state, seen.now)
    if seen.now - state.phase_started_at < phase.deadline():
        return state, []  # hold the phase and look again next interval
    why = "not enough traffic: " + "; ".join(_shortfall(a) for a in pending)
    return _undecided(plan, state, seen.now, why)


def _held(plan: CanaryPlan, state: State, seen: Observation) -> tuple[State, list[SetWeights]]:
    """A rate-limited candidate is neither advanced nor rolled back: the phase holds until
    its deadline, then ``on_inconclusive`` applies as to any undecided phase."""
    if seen.now - state.phase_started_at < plan.phases[state.phase].deadline():
        return state, []
    return _undecided(plan, state, seen.now, "; ".join(a.reason for a in seen.hold))


def _undecided(
    plan: CanaryPlan, state: State, now: float, why: str
) -> tuple[State, list[SetWeights]]:
    if plan.on_inconclusive == "rollback":
        return _roll_back(plan, state, now, f"{why} (on_inconclusive: rollback)")
    if plan.on_inconclusive == "promote":
        state = state.note(now, "inconclusive", f"{why} (on_inconclusive: promote)")
        return _phase_done(plan, state, now)
    return _pause(state, now, f"{why} (on_inconclusive: pause)"), []


def _shortfall(a: Assessment) -> str:
    """``102 of ~300 requests for error_rate < 1%``, or the verdict's own reason."""
    if a.needed is not None and a.sample:
        return f"{a.sample} of ~{a.sample + a.needed} samples for {a.metric} {a.threshold}"
    return said(a)


def said(a: Assessment) -> str:
    """A verdict's reason under its name: ``error_rate < 1%: 2.1 % (lower bound …)``, or
    ``error rate vs baseline: …`` for a comparison with the baseline."""
    if a.metric.endswith("_vs_baseline"):
        return f"{a.metric.replace('_', ' ')}: {a.reason}"
    return f"{a.metric} {a.threshold}: {a.reason}"


def _pause(state: State, now: float, reason: str) -> State:
    return replace(state, status=Status.PAUSED, paused_from=Status.RUNNING).note(
        now, "paused", reason
    )


def _phase_done(plan: CanaryPlan, state: State, now: float) -> tuple[State, list[SetWeights]]:
    if state.phase + 1 == len(plan.phases):
        return replace(state, status=Status.PROMOTED).note(
            now, "promoted", "every phase passed"
        ), []
    if not plan.phases[state.phase].auto_promote:
        return replace(state, status=Status.AWAITING_PROMOTION).note(
            now, "waiting", "promote to continue"
        ), []
    return _enter(plan, state, state.phase + 1, now, approved=False)


def _enter(
    plan: CanaryPlan, state: State, index: int, now: float, *, approved: bool
) -> tuple[State, list[SetWeights]]:
    phase = plan.phases[index]
    if phase.requires_approval and not approved:
        return replace(state, status=Status.AWAITING_APPROVAL, phase=index).note(
            now, "waiting", f"{phase.name} needs approval"
        ), []
    state = replace(
        state, status=Status.RUNNING, phase=index, phase_started_at=now, generation=None
    )
    return state.note(now, "phase", phase.said()), [weights_of(plan, index)]


def _roll_back(
    plan: CanaryPlan, state: State, now: float, reason: str
) -> tuple[State, list[SetWeights]]:
    state = replace(state, status=Status.ROLLED_BACK, generation=None)
    return state.note(now, "rolled_back", reason), [SetWeights(0.0, end_shadow=has_shadow(plan))]


def hold_for_decision(before: State, after: State, now: float) -> tuple[State, list[SetWeights]]:
    """Manual rollback (an environment's choice): instead of rolling back, pause and say why.

    ``after`` is what ``tick`` decided from ``before``; only a rollback is turned into a pause
    (abort rolls back, resume carries on)."""
    if after.status is not Status.ROLLED_BACK:
        raise ValueError("only a rollback can be held for a decision")
    reason = after.history[-1].detail if after.history else ""
    held = replace(before, status=Status.PAUSED, paused_from=Status.RUNNING)
    return held.note(
        now, "rollback_advised", f"{reason} (manual rollback: abort to roll back, resume to go on)"
    ), []


def command(
    plan: CanaryPlan, state: State, name: str, now: float
) -> tuple[State, list[SetWeights]]:
    """approve, promote, pause, resume or abort; ``CommandRefused`` when it does not apply."""
    if name == "approve" and state.status is Status.AWAITING_APPROVAL:
        return _enter(
            plan,
            state.note(now, "approved", plan.phases[state.phase].name),
            state.phase,
            now,
            approved=True,
        )
    if name == "promote" and state.status is Status.AWAITING_PROMOTION:
        return _enter(
            plan,
            state.note(now, "promoted_phase", plan.phases[state.phase].name),
            state.phase + 1,
            now,
            approved=False,
        )
    if name == "pause" and state.status in (
        Status.RUNNING,
        Status.AWAITING_APPROVAL,
        Status.AWAITING_PROMOTION,
    ):
        return replace(state, status=Status.PAUSED, paused_from=state.status).note(
            now, "paused", "by request"
        ), []
    if name == "resume" and state.status is Status.PAUSED:
        resumed = state.paused_from or Status.RUNNING
        # The phase's clock restarts: time spent paused does not count as observation.
        return replace(state, status=resumed, paused_from=None, phase_started_at=now).note(
            now, "resumed", "by request; the phase's clock restarts"
        ), []
    if name == "abort" and state.status not in FINAL:
        state = replace(state, status=Status.ABORTED, generation=None)
        return state.note(now, "aborted", "by request"), [
            SetWeights(0.0, end_shadow=has_shadow(plan))
        ]
    raise CommandRefused(name, state.status)
