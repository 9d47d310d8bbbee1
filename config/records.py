"""What the control plane stores of a rollout, typed: the record in ``{ns}:rollout:<id>``.

The API answers with it (``GET /v1/rollouts/{id}``, its OpenAPI schema is built from these
models), the CLI and the dashboard read it, and the runner checks every record it reads
against it: one that does not validate is quarantined rather than stepped
(``control.rollout_store``). Fields added by later versions are optional, and fields this
version does not know are kept (``extra="allow"``), so records survive a rolling upgrade in
either direction.
"""

from __future__ import annotations

from typing import Any, Literal

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


class HandedOverTrack(Stored):
    name: str
    version: str
    upstreams: list[str]


class Desired(Stored):
    """The outbox: weights a saved decision wants written (and the promotion's handover)."""

    weights: dict[str, float]
    reason: str
    track: HandedOverTrack | None = None


class PostDeploy(Stored):
    """The promoted version's checks, due ``post_deploy.after`` the promotion."""

    status: Literal["scheduled", "passed", "failed", "inconclusive"]
    due_at: float
    checks: list[dict[str, Any]] = Field(default_factory=list)
    counts: dict[str, Any] | None = None
    at: float | None = None


class RolloutRecord(Stored):
    id: str
    route: str
    strategy: Strategy
    rollback: Literal["automatic", "manual"] = "automatic"
    plan: dict[str, Any]
    """The plan as written (``config.plans``), validated again by the runner for its strategy."""
    smoke_tests: list[dict[str, Any]] = Field(default_factory=list)
    created_at: float
    created_by: str
    state: RolloutState
    tests: dict[str, Any] = Field(default_factory=dict)
    """The sequential tests' state, one per comparison."""
    latency_edge: int | None = None
    accumulator: dict[str, Any] | None = None
    phase_counts: dict[str, Any] | None = None
    checklist: ChecklistState = Field(default_factory=ChecklistState)
    warnings: list[str] = Field(default_factory=list)
    before_weights: dict[str, float] = Field(default_factory=dict)
    desired: Desired | None = None
    verdicts: list[dict[str, Any]] = Field(default_factory=list)
    """The last look's verdicts; every look's are in ``GET /v1/rollouts/{id}/verdicts``."""
    waiting_for: str = ""
    post_deploy: PostDeploy | None = None
    report: dict[str, Any] | None = None
    """An A/B test's report, once it ended."""
    emitted: int = Field(default=0, ge=0)
    version: int = Field(ge=0)
    up: list[dict[str, Any]] | None = None
    smoke_results: list[dict[str, Any]] | None = None
    probe_results: dict[str, str] | None = None
    acked: bool | None = None
    served: dict[str, int] | None = None
    weights_error: str | None = None


class QuarantinedRollout(BaseModel):
    id: str
    reason: str
    at: float
