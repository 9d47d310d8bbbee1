"""A canary plan's phases; the first may be a shadow phase.

A shadow phase (``shadow:``) gives the candidate no live traffic (``traffic`` 0, the default
there): the proxies mirror ``shadow.percent`` of the route's POST requests to the candidate's
track in the background (``config.shadow``), and the phase is judged on those copies alone:
its own ``criteria`` (instead of ``config.success_criteria`` and ``canary_metrics``), its
``rollback_if``, and the comparisons of the copies with the baseline's live requests. The
route mirrors from the write of the phase's weights to the write that leaves the phase (the
next phase's weights, a rollback, an abort); a pause keeps it mirroring.

Rules, checked when the plan loads: only the first phase may be a shadow phase, and a live
phase must follow it (a plan is never promoted on copies alone); its ``traffic`` is 0; it
has ``criteria`` or a ``duration`` (without either it would pass at its first look);
``criteria`` belong to a shadow phase only, and so do the metrics measured on copies
(``config.thresholds.SHADOW_METRICS``: ``shadow_win_rate``), which a live phase could never
judge.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from config.base import Model
from config.checks import check_thresholds
from config.durations import Duration
from config.schema import Weight
from config.shadow import Shadow
from config.thresholds import SHADOW_METRICS, ConditionField, Metric

DEFAULT_MAX_DURATION = 3600.0
"""A phase without a ``duration`` decides within this long (its ``max_duration``)."""
DEFAULT_SHADOW_PERCENT = 10.0


class ShadowPhase(Model):
    """``shadow:`` of a shadow phase: a route's ``config.shadow.Shadow`` without ``track``
    (the candidate's). A setting left out takes the route's default; each is checked by
    building that ``Shadow``, so a plan and a routing document accept the same values."""

    percent: float = DEFAULT_SHADOW_PERCENT
    max_in_flight: int | None = None
    max_tokens_per_minute: int | None = None
    timeout: Duration | None = None
    store_text: bool | None = None
    text_bytes: int | None = None
    max_pairs: int | None = None
    pairs_ttl: Duration | None = None

    @model_validator(mode="after")
    def _as_route_shadow(self) -> ShadowPhase:
        if self.percent <= 0:
            raise ValueError("percent: a shadow phase mirrors more than 0 % (nothing to judge)")
        try:
            self.for_track("candidate")
        except ValidationError as exc:
            raise ValueError(
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'shadow'}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                )
            ) from None
        return self

    def for_track(self, track: str) -> Shadow:
        """The route's ``shadow`` that mirrors to ``track``."""
        return Shadow.model_validate({"track": track, **self.model_dump(exclude_none=True)})


class Phase(Model):
    name: str = Field(min_length=1, max_length=200)
    traffic: Weight
    duration: Duration | None = None
    """The minimum bake: the phase is not judged complete before it has passed."""
    max_duration: Duration | None = None
    """When it has passed with verdicts still inconclusive, the plan's ``on_inconclusive``
    applies. Default: 3 × ``duration``, or one hour without a duration."""
    auto_promote: bool = True
    requires_approval: bool = False
    rollback_if: list[ConditionField] = Field(default_factory=list)
    shadow: ShadowPhase | None = None
    """Mirror requests to the candidate instead of sending it users (a shadow phase)."""
    criteria: dict[Metric, str] = Field(default_factory=dict)
    """A shadow phase's success criteria, judged on the copies."""

    _criteria = field_validator("criteria")(check_thresholds)

    @model_validator(mode="before")
    @classmethod
    def _no_live_traffic(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("shadow") is not None and "traffic" not in data:
            return {**data, "traffic": 0}  # a shadow phase may leave traffic out
        return data

    @model_validator(mode="after")
    def _deadline(self) -> Phase:
        if (
            self.max_duration is not None
            and self.duration is not None
            and self.max_duration < self.duration
        ):
            raise ValueError(
                f"max_duration ({self.max_duration:g} s) is shorter than duration "
                f"({self.duration:g} s): the phase could never finish its bake"
            )
        return self

    @model_validator(mode="after")
    def _shadow_rules(self) -> Phase:
        if self.shadow is None:
            if self.criteria:
                raise ValueError(
                    "criteria: only a shadow phase has criteria of its own; live phases are "
                    "judged by config.success_criteria and canary_metrics"
                )
            named = sorted({c.metric for c in self.rollback_if} & SHADOW_METRICS)
            if named:
                raise ValueError(
                    f"rollback_if: {named[0]} is measured on shadow copies: only a shadow "
                    "phase can judge it"
                )
            return self
        if self.traffic != 0:
            raise ValueError(
                f"traffic: a shadow phase sends the candidate no live traffic: leave traffic "
                f"out or write 0 (got {self.traffic:g})"
            )
        if not self.criteria and self.duration is None:
            raise ValueError(
                "a shadow phase needs criteria or a duration: without either it would pass "
                "at its first look"
            )
        return self

    def deadline(self) -> float:
        """Seconds after the phase starts when it must decide (``max_duration``)."""
        if self.max_duration is not None:
            return self.max_duration
        return DEFAULT_MAX_DURATION if self.duration is None else 3 * self.duration

    def said(self) -> str:
        """``Phase 1: 5%``, or ``Shadow: 0%, shadow 10%`` for a shadow phase."""
        if self.shadow is None:
            return f"{self.name}: {self.traffic:g}%"
        return f"{self.name}: {self.traffic:g}%, shadow {self.shadow.percent:g}%"


def check_shadow_phases(phases: list[Phase]) -> None:
    """Only the first phase may be a shadow phase, and a live phase follows it."""
    for index, phase in enumerate(phases[1:], start=1):
        if phase.shadow is not None:
            raise ValueError(
                f"phases[{index}] ({phase.name!r}).shadow: only the first phase may be a "
                "shadow phase"
            )
    if phases and phases[0].shadow is not None and len(phases) == 1:
        raise ValueError(
            f"phases[0] ({phases[0].name!r}) is a shadow phase: a live phase must follow it "
            "(a candidate is never promoted on shadow copies alone)"
        )


def check_live_metrics(used: list[str]) -> None:
    """``used``: the metrics of the live phases' criteria (``success_criteria``,
    ``canary_metrics``); refuses those only a shadow phase can judge."""
    named = sorted(set(used) & SHADOW_METRICS)
    if named:
        raise ValueError(
            f"{named[0]} is measured on shadow copies: give it in a shadow phase's criteria, "
            "not in success_criteria or canary_metrics"
        )
