"""The runner's strategies behind one small Protocol, and the factory that picks one by the
record's ``strategy``: canary, blue-green and big bang (all stored as canary plans:
``config.plans.as_canary``, ``blue_green_as_canary``) and the A/B test. A kind the factory
does not know is refused (``UnknownStrategy``), never stepped as something else.

Each strategy says what the runner does with a rollout of its kind at each stage: ``begin``
(the checklist is complete), ``look`` (running, its weights applied everywhere), ``command``
(an operator's approve, promote, pause, resume or abort) and ``after`` (over: the post-deploy
checks). The decisions themselves are the pure state machines of ``control.strategies``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple, Protocol

from config.plans import ABTestPlan, CanaryPlan, stored_plan
from config.records import RolloutRecord, evolve
from control.metric_source import MetricSource
from control.observation import Action, Observer
from control.post_deploy import post_deploy
from control.rollout_prep import Preparation
from control.strategies import ab, canary
from control.strategies.canary import State, Status, hold_for_decision, tick

Record = RolloutRecord


class Decision(NamedTuple):
    """What a strategy decided: the record with what it measured, the new state, and the
    weights to write (``actions``, through the outbox)."""

    record: RolloutRecord
    state: State
    actions: list[Action]


class UnknownStrategy(ValueError):
    """A record names a strategy this control plane does not know."""


class Strategy(Protocol):
    async def begin(self, record: Record, state: State, now: float) -> Decision: ...

    async def look(self, record: Record, state: State, now: float) -> Decision: ...

    def command(self, record: Record, state: State, name: str, now: float) -> Decision: ...

    async def after(self, record: Record, now: float) -> Record | None:
        """Checks once the rollout is over: the record with their results, None if none ran."""
        ...


class Canary:
    """Canary phases judged on the fleet's windows; blue-green and big bang are canaries of
    one phase."""

    def __init__(self, prep: Preparation, observer: Observer, windows: MetricSource) -> None:
        self._prep = prep
        self._observer = observer
        self._windows = windows

    @staticmethod
    def plan(record: Record) -> CanaryPlan:
        return CanaryPlan.model_validate(stored_plan(record.plan))

    async def begin(self, record: Record, state: State, now: float) -> Decision:
        """Register the candidate at 0 %, check it is up and passes its smoke tests, freeze
        the latency edge, then the first phase's weights."""
        plan = self.plan(record)
        await self._prep.register_candidate(plan)
        record, failed = await self._prep.verify(plan, record)
        if failed is not None:
            state = replace(state, status=Status.ROLLED_BACK).note(now, "rolled_back", failed)
            return Decision(record, state, [])
        record = evolve(record, latency_edge=await self._observer.latency_edge(plan))
        state, actions = canary.start(plan, state, now)
        return Decision(record, state, list(actions))

    async def look(self, record: Record, state: State, now: float) -> Decision:
        plan = self.plan(record)
        record, seen = await self._observer.observe(plan, record, state, now)
        after, actions = tick(plan, state, seen)
        if after.status is Status.ROLLED_BACK and record.rollback == "manual":
            held, holding = hold_for_decision(state, after, now)
            return Decision(record, held, list(holding))
        return Decision(record, after, list(actions))

    def command(self, record: Record, state: State, name: str, now: float) -> Decision:
        state, actions = canary.command(self.plan(record), state, name, now)
        return Decision(record, state, list(actions))

    async def after(self, record: Record, now: float) -> Record | None:
        return await post_deploy(self._windows, self.plan(record), record, now)


class ABTest:
    """Two arms at fixed weights until the test's end, then a report."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    @staticmethod
    def plan(record: Record) -> ABTestPlan:
        return ABTestPlan.model_validate(stored_plan(record.plan))

    async def begin(self, record: Record, state: State, now: float) -> Decision:
        state, actions = ab.start(self.plan(record), state, now)
        return Decision(record, state, list(actions))

    async def look(self, record: Record, state: State, now: float) -> Decision:
        return Decision(*await self._observer.ab_tick(self.plan(record), record, state, now))

    def command(self, record: Record, state: State, name: str, now: float) -> Decision:
        plan = self.plan(record)
        state, actions = ab.command(plan, state, name, now, record.before_weights)
        return Decision(record, state, list(actions))

    async def after(self, record: Record, now: float) -> Record | None:
        return None  # the report was written when the test ended


class Strategies:
    """The factory: the strategy of a record's ``strategy``."""

    def __init__(self, prep: Preparation, observer: Observer, windows: MetricSource) -> None:
        canaries = Canary(prep, observer, windows)
        self._kinds: dict[str, Strategy] = {
            "canary": canaries,
            "blue_green": canaries,
            "big_bang": canaries,
            "ab_test": ABTest(observer),
        }

    def __call__(self, kind: str) -> Strategy:
        strategy = self._kinds.get(kind)
        if strategy is None:
            known = ", ".join(sorted(self._kinds))
            raise UnknownStrategy(f"unknown strategy {kind!r} (known: {known})")
        return strategy
