"""What the control plane stores of a rollout, typed: the record in ``{ns}:rollout:<id>``.

The API answers with it (``GET /v1/rollouts/{id}``, its OpenAPI schema is built from these
models), the CLI and the dashboard read it, and the runner checks every record it reads
against it: one that does not validate is quarantined rather than stepped
(``control.rollout_store``). Fields added by later versions are optional, and fields this
version does not know are kept (``extra="allow"``), so records survive a rolling upgrade in
either direction.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

RolloutStatus = Literal[
    "pending",
    "running",
    "awaiting_approval",
    "awaiting_promotion",
    "paused",
    "promoted",
    "rolled_back",
    "aborted",
    "completed",
]
Strategy = Literal["canary", "blue_green", "big_bang", "ab_test"]


class Stored(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


R = TypeVar("R", bound=Stored)


class Event(Stored):
    """One step of the rollout's history: a phase, a pause, a verdict's consequence."""

    at: float
    kind: str
    detail: str


class RolloutState(Stored):
    """The strategy's state (``control.strategies.canary.State``)."""

    status: RolloutStatus
    phase: int = Field(ge=0)
    phase_started_at: float
    generation: int | None
    """The routing generation that carries the phase's weights, once written."""
    error_streak: int = 0
    errors: int = 0
    failure_streak: int = 0
    failures: int = 0
    paused_from: RolloutStatus | None = None
    history: list[Event] = Field(default_factory=list)


class Attestation(Stored):
    """Who confirmed a checklist item, when, and how (``attested`` or ``probe``)."""

    by: str
    at: float
    how: str
    note: str = ""


class ChecklistState(Stored):
    required: dict[str, Attestation | None] = Field(default_factory=dict)
    recommended: dict[str, Attestation | None] = Field(default_factory=dict)


Json = dict[str, Any]
"""A JSON object whose shape belongs to another module: a plan as written
(``config.plans``), a sequential test's state (``RateTest``), an accumulator's counts
(``control.accumulate``). Each is validated by its owner where it is used."""


class HandedOverTrack(Stored):
    name: str
    version: str
    upstreams: list[str]


class Desired(Stored):
    """The outbox: weights a saved decision wants written (and the promotion's handover)."""

    weights: dict[str, float]
    reason: str
    track: HandedOverTrack | None = None
    shadow: Json | None = None
    """The route's ``shadow`` (``config.shadow.Shadow``) to set with the weights: a shadow
    phase begins."""
    end_shadow: str | None = None
    """Remove the route's ``shadow`` with the weights if it mirrors to this track (the
    candidate's): the rollout leaves its shadow phase, or ends."""


class PostDeployCheck(Stored):
    check: str
    """``health`` or a metric's name."""
    verdict: str
    detail: str
    upstream: str | None = None


class PostDeploy(Stored):
    """The promoted version's checks, due ``post_deploy.after`` the promotion."""

    status: Literal["scheduled", "passed", "failed", "inconclusive"]
    due_at: float
    checks: list[PostDeployCheck] = Field(default_factory=list)
    counts: Json | None = None
    at: float | None = None


class Judged(Stored):
    """A verdict as stored (``control.analysis.verdict.Assessment``): the figures a person
    reads. A rollout's looks and a flag schedule's gate keep it with what each adds."""

    metric: str
    verdict: str
    value: float | None = None
    threshold: str = ""
    sample: int = 0
    reason: str = ""
    bound: float | None = None
    needed: int | None = None
    unit: str = ""


class StoredVerdict(Judged):
    """One criterion's verdict at a look, with the figures a person reads."""

    role: Literal["rollback", "success"] = "success"
    baseline: float | None = None
    eta_s: float | None = None


class RolloutLook(Stored):
    """One look's verdicts, kept in the rollout's verdict stream (``/verdicts``)."""

    at: float
    phase: int
    verdicts: list[StoredVerdict]
    id: str | None = None
    """The stream entry's id, once stored."""


class SequentialSlot(Stored):
    """One sequential test's state and the counts it has consumed (a rollout's comparisons,
    a flag schedule's gate)."""

    test: Json
    consumed: list[int]


class ProbeResult(Stored):
    """An upstream's answer to the up check or to a smoke test."""

    name: str
    upstream: str
    ok: bool
    detail: str


class ABReport(Stored):
    a: str
    b: str
    confidence: float
    holm: bool
    ended: str
    served: dict[str, int]
    comparisons: list[Json]
    summary: list[str]


class RolloutRecord(Stored):
    id: str
    route: str
    strategy: Strategy
    rollback: Literal["automatic", "manual"] = "automatic"
    plan: Json
    """The plan as written (``config.plans``), validated again by the runner for its strategy."""
    smoke_tests: list[Json] = Field(default_factory=list)
    created_at: float
    created_by: str
    state: RolloutState
    tests: dict[str, SequentialSlot] = Field(default_factory=dict)
    """The sequential tests' state, one per comparison."""
    latency_edge: int | None = None
    accumulator: Json | None = None
    phase_counts: Json | None = None
    checklist: ChecklistState = Field(default_factory=ChecklistState)
    warnings: list[str] = Field(default_factory=list)
    before_weights: dict[str, float] = Field(default_factory=dict)
    desired: Desired | None = None
    verdicts: list[StoredVerdict] = Field(default_factory=list)
    """The last look's verdicts; every look's are in ``GET /v1/rollouts/{id}/verdicts``."""
    waiting_for: str = ""
    post_deploy: PostDeploy | None = None
    report: ABReport | None = None
    """An A/B test's report, once it ended."""
    emitted: int = Field(default=0, ge=0)
    version: int = Field(ge=0)
    up: list[ProbeResult] | None = None
    smoke_results: list[ProbeResult] | None = None
    probe_results: dict[str, str] | None = None
    acked: bool | None = None
    served: dict[str, int] | None = None
    weights_error: str | None = None

    def stored(self) -> dict[str, Any]:
        """The record as JSON: results a step has not made yet are left out, not null."""
        absent = {name for name in OPTIONAL_RESULTS if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=absent)


OPTIONAL_RESULTS = frozenset(
    {"up", "smoke_results", "probe_results", "acked", "served", "weights_error"}
)
"""Results a record holds only once the step that makes them ran."""


def evolve(record: R, **changes: Any) -> R:
    """``record`` with ``changes``, validated like a record read from Redis: a change of the
    wrong shape fails here, not when the next pass reads it back."""
    return type(record).model_validate({**dict(record), **changes})


class QuarantinedRollout(BaseModel):
    id: str
    reason: str
    at: float


class RolloutView(RolloutRecord):
    """``GET /v1/rollouts/{id}``: the record, with what a person asks first."""

    time_in_phase_s: float | None = None
    weights: dict[str, float] | None = None
    """The route's weights now (null if the route is gone)."""


class RolloutPage(BaseModel):
    """``GET /v1/rollouts``: active rollouts, then finished ones newest first."""

    rollouts: list[RolloutRecord]
    next_cursor: str | None
    """The next page's ``?cursor=``; null on the last page."""
    quarantined: list[QuarantinedRollout]


class RolloutLooks(BaseModel):
    """``GET /v1/rollouts/{id}/verdicts``: every look, newest first."""

    looks: list[RolloutLook]
