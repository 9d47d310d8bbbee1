"""What the control plane stores of a flag's schedule, typed: the record in
``{ns}:flag-schedule:<flag>`` (``control.schedule``, ``docs/FLAGS.md``).

Like the rollout record (``config.records``), the models are frozen and keep the fields they
do not know (``extra="allow"``), so records survive a rolling upgrade in either direction;
fields added later are optional. A record changes only by the transitions below, each a new
record: the runner saves what they return, and no reader ever sees one half changed.

The JSON is the one earlier versions wrote, field for field, and ``GET
/v1/flags/{name}/schedule`` shows parts of it as they are (``last``, the analysis verdict).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from config.metrics import TrackWindow
from config.records import Judged, SequentialSlot, Stored


class AppliedStep(Stored):
    """One step the runner applied (or found applied), in schedule order."""

    key: str
    """The step's content (``control.schedule_steps.step_key``): once the step is edited it
    no longer matches, and it and every later step count as not applied."""
    date: str
    at: float
    generation: int | None
    """The routing generation that carries it; None when the document already held it."""


class LastResult(Stored):
    """What the runner, or a command, did last, for people to read."""

    at: float
    outcome: str
    """``applied``, ``in_effect``, ``waiting``, ``paused`` or ``resumed`` (free text for
    readers, so a newer version may add one)."""
    detail: str


class Accumulator(Stored):
    """Counts since the analysis period began (``control.accumulate`` owns the arithmetic):
    windows older than ``cursor`` are summed for good in ``closed``; ``offset`` is what the
    period's first window held before it began."""

    cursor: int
    closed: dict[str, TrackWindow] = Field(default_factory=dict)
    offset: dict[str, TrackWindow] = Field(default_factory=dict)


class GateVerdict(Judged):
    """The gate's last verdict and its time."""

    verdict: Literal["pass", "fail", "inconclusive", "error"]
    at: float


class Analysis(Stored):
    """The analysis of the traffic since the previous step (or since a resume)."""

    since: float
    accumulator: Accumulator
    verdict: GateVerdict | None = None
    test: SequentialSlot | None = None
    """The gate's sequential test (``RateTest``'s state, checked on restore) and the totals
    it was fed: released requests and errors, baseline requests and errors. None: fresh."""


class ScheduleRecord(Stored):
    flag: str
    created_at: float
    applied: list[AppliedStep] = Field(default_factory=list)
    last: LastResult | None = None
    analysis: Analysis
    version: int = Field(ge=0)
    """Bumped by every save (compare-and-set, ``control.versioned``)."""

    def applied_keys(self) -> list[str]:
        return [step.key for step in self.applied]

    def noted(self, at: float, outcome: str, detail: str) -> ScheduleRecord:
        """This record with ``last`` set."""
        return self.model_copy(update={"last": LastResult(at=at, outcome=outcome, detail=detail)})

    def analysed(self, analysis: Analysis) -> ScheduleRecord:
        """This record with the analysis moved on, or started afresh (a resume)."""
        return self.model_copy(update={"analysis": analysis})

    def stepped(
        self, index: int, step: AppliedStep, analysis: Analysis, detail: str
    ) -> ScheduleRecord:
        """This record once ``step`` (the ``index``-th) is applied: the steps after it are
        dropped (edited since), the analysis starts afresh for the next step."""
        outcome = "applied" if step.generation is not None else "in_effect"
        return self.model_copy(
            update={
                "applied": [*self.applied[:index], step],
                "analysis": analysis,
                "last": LastResult(at=step.at, outcome=outcome, detail=detail),
            }
        )
