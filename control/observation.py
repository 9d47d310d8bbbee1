"""A running rollout's looks: once every replica acked its weights, the counts since the
rollout and since the phase began, judged (the canary's thresholds and comparisons, the A/B
test's report at its end), each look's verdicts kept in the verdict stream."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from redis.exceptions import RedisError

from config.metrics import percentile_index
from config.plans import ABTestPlan, CanaryPlan
from control import accumulate, looks
from control.analysis.compare import compare
from control.analysis.verdict import Assessment, Verdict
from control.rollout_store import RolloutStore
from control.store import DocumentStore
from control.strategies import ab
from control.strategies.canary import Observation, SetWeights, State
from control.windows import WindowReader

log = logging.getLogger("splitgate.control.rollouts")

Action = SetWeights | ab.SetAll


class Observer:
    def __init__(self, store: DocumentStore, windows: WindowReader, records: RolloutStore) -> None:
        self._store = store
        self._windows = windows
        self._records = records

    async def acked(self, state: State) -> bool:
        # Every live replica applies the stored document (its digest too), this generation or later.
        return await self._store.converged(state.generation or 0)

    async def observe(
        self, plan: CanaryPlan, record: dict[str, Any], state: State, now: float
    ) -> Observation:
        acked = await self.acked(state)
        record["acked"] = acked
        if not acked:
            return Observation(now, False)
        cand, base = plan.candidate.track, plan.baseline
        await self.start_counting(record, state.generation, now)
        counts = record.get("phase_counts") or {}
        if record.get("accumulator") is None or counts.get("generation") != state.generation:
            return Observation(now, True, (unreadable("cannot start the counts"),), ())
        try:
            since = await accumulate.totals(
                self._windows, plan.route, record["accumulator"], [cand, base], now
            )
            phase = await accumulate.totals(
                self._windows, plan.route, record["phase_counts"], [cand, base], now
            )
        except (RedisError, OSError) as exc:  # the store is down: an error, never a failure
            return Observation(now, True, (unreadable(str(exc)),), ())
        read = looks.Counts(
            since=(since[cand], since[base]),
            phase=(phase[cand], phase[base]),
            rollout_s=now - record["accumulator"].get("from", record["created_at"]),
            phase_s=now - record["phase_counts"]["from"],
        )
        seen = looks.look(plan, state.phase, record["latency_edge"], record["tests"], read)
        record["tests"] = seen.tests
        await self._record_look(record, now, state, seen.verdicts)
        return Observation(now, True, seen.rollback, seen.success)

    async def start_counting(
        self, record: dict[str, Any], generation: int | None, now: float
    ) -> None:
        """Count from the moment the rollout's weights, then each phase's, were written: what
        the windows held before (other weights, the hours before a test) is not judged.

        Called when the weights are written; if Redis failed then, the next look starts the
        counts instead (a little later, never earlier)."""
        phase_generation = (record.get("phase_counts") or {}).get("generation")
        if record.get("accumulator") is not None and phase_generation == generation:
            return
        names = arms(record)
        try:
            if record.get("accumulator") is None:
                started = await accumulate.start(self._windows, record["route"], names, now)
                record["accumulator"] = {**started, "from": now}
                record["tests"] = looks.fresh_tests()
            if phase_generation != generation:
                counts = await accumulate.start(self._windows, record["route"], names, now)
                record["phase_counts"] = {**counts, "from": now, "generation": generation}
        except (RedisError, OSError) as exc:
            log.warning("rollout %s: counts start at the next look: %s", record["id"], exc)

    async def _record_look(
        self, record: dict[str, Any], now: float, state: State, verdicts: list[dict[str, Any]]
    ) -> None:
        record["verdicts"] = verdicts
        look = {"at": now, "phase": state.phase, "verdicts": verdicts}
        try:
            await self._records.add_look(record["id"], look)
        except RedisError as exc:
            log.warning("rollout %s: verdicts not recorded: %s", record["id"], exc)

    async def latency_edge(self, plan: CanaryPlan) -> int | None:
        """The bucket holding the baseline's p95 over the last 5 minutes (None if too little)."""
        _, _, merged = await self._windows.read(plan.route, 300)
        baseline = accumulate.arm(merged, plan.baseline)
        if baseline.requests < looks.MIN_REQUESTS:
            return None
        return percentile_index(baseline.latency, 0.95)

    async def ab_tick(
        self, plan: ABTestPlan, record: dict[str, Any], state: State, now: float
    ) -> tuple[State, list[Action]]:
        if not await self.acked(state):
            return state, []
        arms = list(plan.split)
        await self.start_counting(record, state.generation, now)
        if record.get("accumulator") is None:
            log.warning("A/B test %s: metrics unavailable", record["id"])
            return state, []
        try:
            since = await accumulate.totals(
                self._windows, plan.route, record["accumulator"], arms, now
            )
        except (RedisError, OSError) as exc:
            log.warning("A/B test %s: metrics unavailable: %s", record["id"], exc)
            return state, []
        record["served"] = {name: since[name].requests for name in arms}
        why = ab.finished(plan, state, now, record["served"])
        if why is None:
            return state, []
        a, b = arms
        results = compare(since[a], since[b], plan.metrics, plan.confidence, holm=plan.holm)
        record["report"] = {
            "a": a,
            "b": b,
            "confidence": plan.confidence,
            "holm": plan.holm,
            "ended": why,
            "served": record["served"],
            "comparisons": [asdict(r) for r in results],
            "summary": [r.summary for r in results],
        }
        state, actions = ab.complete(plan, state, now, why, record["before_weights"])
        state = state.note(now, "report", "; ".join(r.summary for r in results))
        return state, list(actions)


def arms(record: Mapping[str, Any]) -> list[str]:
    plan = record["plan"]
    if record["strategy"] == "ab_test":
        return list(plan["split"])
    return [plan["candidate"]["track"], plan["baseline"]]


def unreadable(why: str) -> Assessment:
    return Assessment("metrics", Verdict.ERROR, None, "", 0, f"metrics unavailable: {why}")
