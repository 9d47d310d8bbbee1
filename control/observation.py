"""A running rollout's looks: once every replica acked its weights, the counts since the
rollout and since the phase began, judged (the canary's thresholds and comparisons, the A/B
test's report at its end), each look's verdicts kept in the verdict stream. In a shadow
phase the candidate's arm is its shadow copies (``shadow_arm``), the baseline's its live
requests; a plan that opens with one counts that arm from its start."""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict
from typing import Any

from redis.exceptions import RedisError

from config.metrics import percentile_index, shadow_arm
from config.plans import ABTestPlan, CanaryPlan
from config.records import ABReport, RolloutLook, RolloutRecord, evolve
from control import accumulate, looks
from control.analysis.compare import compare
from control.analysis.verdict import Assessment, Verdict
from control.metric_source import MetricSource
from control.rollout_store import RolloutStore
from control.store import DocumentStore
from control.strategies import ab
from control.strategies.canary import Observation, SetWeights, State

log = logging.getLogger("splitgate.control.rollouts")

Action = SetWeights | ab.SetAll


class Observer:
    def __init__(self, store: DocumentStore, windows: MetricSource, records: RolloutStore) -> None:
        self._store = store
        self._windows = windows
        self._records = records

    async def acked(self, state: State) -> bool:
        # Every live replica applies the stored document (its digest too), this generation or later.
        return await self._store.converged(state.generation or 0)

    async def observe(
        self, plan: CanaryPlan, record: RolloutRecord, state: State, now: float
    ) -> tuple[RolloutRecord, Observation]:
        """Read the counts and judge them (``looks.look``): the record with the look's
        verdicts and the tests' new state, and what the strategy is to decide on."""
        acked = await self.acked(state)
        record = evolve(record, acked=acked)
        if not acked:
            return record, Observation(now, False)
        cand, base = looks.candidate_arm(plan, state.phase), plan.baseline
        names = arms(record)
        record = await self.start_counting(record, state.generation, now)
        accumulator, counts = record.accumulator, record.phase_counts
        if accumulator is None or counts is None or counts.get("generation") != state.generation:
            return record, Observation(now, True, (unreadable("cannot start the counts"),), ())
        accumulator, counts = copy.deepcopy(accumulator), copy.deepcopy(counts)
        try:
            since = await accumulate.totals(self._windows, plan.route, accumulator, names, now)
            phase = await accumulate.totals(self._windows, plan.route, counts, names, now)
        except (RedisError, OSError) as exc:  # the store is down: an error, never a failure
            return record, Observation(now, True, (unreadable(str(exc)),), ())
        read = looks.Counts(
            since=(since[cand], since[base]),
            phase=(phase[cand], phase[base]),
            rollout_s=now - float(accumulator.get("from", record.created_at)),
            phase_s=now - float(counts["from"]),
        )
        seen = looks.look(plan, state.phase, record.latency_edge, record.tests, read)
        record = evolve(
            record,
            accumulator=accumulator,
            phase_counts=counts,
            tests=seen.tests,
            verdicts=seen.verdicts,
        )
        await self._record_look(record, now, state)
        return record, Observation(now, True, seen.rollback, seen.success, seen.hold)

    async def start_counting(
        self, record: RolloutRecord, generation: int | None, now: float
    ) -> RolloutRecord:
        """Count from the moment the rollout's weights, then each phase's, were written: what
        the windows held before (other weights, the hours before a test) is not judged.

        Called when the weights are written; if Redis failed then, the next look starts the
        counts instead (a little later, never earlier)."""
        phase_generation = (record.phase_counts or {}).get("generation")
        if record.accumulator is not None and phase_generation == generation:
            return record
        names = arms(record)
        changes: dict[str, Any] = {}
        try:
            if record.accumulator is None:
                started = await accumulate.start(self._windows, record.route, names, now)
                changes["accumulator"] = {**started, "from": now}
                changes["tests"] = looks.fresh_tests(looks.opens_with_shadow(record.plan))
            if phase_generation != generation:
                counts = await accumulate.start(self._windows, record.route, names, now)
                changes["phase_counts"] = {**counts, "from": now, "generation": generation}
        except (RedisError, OSError) as exc:
            log.warning("rollout %s: counts start at the next look: %s", record.id, exc)
        return evolve(record, **changes) if changes else record

    async def _record_look(self, record: RolloutRecord, now: float, state: State) -> None:
        look = RolloutLook(at=now, phase=state.phase, verdicts=record.verdicts)
        try:
            await self._records.add_look(record.id, look)
        except RedisError as exc:
            log.warning("rollout %s: verdicts not recorded: %s", record.id, exc)

    async def latency_edge(self, plan: CanaryPlan) -> int | None:
        """The bucket holding the baseline's p95 over the last 5 minutes (None if too little)."""
        _, _, merged = await self._windows.read(plan.route, 300)
        baseline = accumulate.arm(merged, plan.baseline)
        if baseline.requests < looks.MIN_REQUESTS:
            return None
        return percentile_index(baseline.latency, 0.95)

    async def ab_tick(
        self, plan: ABTestPlan, record: RolloutRecord, state: State, now: float
    ) -> tuple[RolloutRecord, State, list[Action]]:
        if not await self.acked(state):
            return record, state, []
        arms = list(plan.split)
        record = await self.start_counting(record, state.generation, now)
        if record.accumulator is None:
            log.warning("A/B test %s: metrics unavailable", record.id)
            return record, state, []
        accumulator = copy.deepcopy(record.accumulator)
        try:
            since = await accumulate.totals(self._windows, plan.route, accumulator, arms, now)
        except (RedisError, OSError) as exc:
            log.warning("A/B test %s: metrics unavailable: %s", record.id, exc)
            return record, state, []
        served = {name: since[name].requests for name in arms}
        record = evolve(record, accumulator=accumulator, served=served)
        why = ab.finished(plan, state, now, served)
        if why is None:
            return record, state, []
        a, b = arms
        prices = (plan.pricing.get(a), plan.pricing.get(b))
        results = compare(
            since[a], since[b], plan.metrics, plan.confidence, holm=plan.holm, prices=prices
        )
        report = ABReport(
            a=a,
            b=b,
            confidence=plan.confidence,
            holm=plan.holm,
            ended=why,
            served=served,
            comparisons=[asdict(r) for r in results],
            summary=[r.summary for r in results],
        )
        record = evolve(record, report=report)
        state, actions = ab.complete(plan, state, now, why, record.before_weights)
        state = state.note(now, "report", "; ".join(r.summary for r in results))
        return record, state, list(actions)


def arms(record: RolloutRecord) -> list[str]:
    plan = record.plan
    if record.strategy == "ab_test":
        return list(plan["split"])
    cand = plan["candidate"]["track"]
    shadow = [shadow_arm(cand)] if plan["phases"][0].get("shadow") else []
    return [cand, plan["baseline"], *shadow]


def unreadable(why: str) -> Assessment:
    return Assessment("metrics", Verdict.ERROR, None, "", 0, f"metrics unavailable: {why}")
