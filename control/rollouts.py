"""Canary rollouts, persisted in Redis and stepped by a runner: the I/O around the pure strategy.

A rollout record (``{ns}:rollout:<id>``) holds the plan as written, the strategy's state, the
rate test's state and the counts it has consumed, so a restarted control plane resumes the
same phase with the same history. One rollout per route may be active
(``{ns}:rollout:active:<route>``).

Each ``step``: register the candidate's track (weight 0) if needed; carry out the strategy's
weight changes through the document store (compare-and-set, audited); judge the phase from
the fleet's metric windows once every live replica acked its weights.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from redis.exceptions import RedisError

from config.keys import Keys
from config.metrics import TrackWindow, percentile_index
from config.plans import CanaryPlan, SmokeTest
from config.thresholds import parse_threshold
from control import edits
from control.analysis.sequential import Interval, RateTest
from control.analysis.verdict import Assessment, Verdict, assess, breached
from control.smoke import run_smoke_tests
from control.store import Change, DocumentStore
from control.strategies.canary import (
    FINAL,
    Event,
    Observation,
    SetWeights,
    State,
    Status,
    command,
    hold_for_decision,
    start,
    tick,
    written,
)
from control.windows import WindowReader

log = logging.getLogger("splitgate.control.rollouts")

ACTOR = "splitgate-rollout"
MIN_REQUESTS = 100
MIN_RATINGS = 30
LATENCY_ALPHA = 0.004
"""The slow-request test's share of the false-rollback budget (the error test has 0.01)."""


_SAVE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['version'] ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class RolloutConflict(Exception):
    """Another rollout is active on the route (HTTP 409)."""


def state_to_dict(state: State) -> dict[str, Any]:
    return asdict(state)


def state_from_dict(data: dict[str, Any]) -> State:
    return State(
        status=Status(data["status"]),
        phase=data["phase"],
        phase_started_at=data["phase_started_at"],
        generation=data["generation"],
        error_streak=data["error_streak"],
        paused_from=Status(data["paused_from"]) if data["paused_from"] else None,
        history=tuple(Event(**e) for e in data["history"]),
    )


class Rollouts:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        store: DocumentStore,
        windows: WindowReader,
        clock: Callable[[], float] = time.time,
        epoch: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._windows = windows
        self._clock = clock
        self._epoch = epoch
        self._save_script = redis.register_script(_SAVE)

    async def create(
        self,
        plan: CanaryPlan,
        raw: dict[str, Any],
        actor: str,
        strategy: str = "canary",
        smoke_tests: list[dict[str, Any]] | None = None,
        rollback: str = "automatic",
    ) -> dict[str, Any]:
        rollout_id = f"{plan.route}-{secrets.token_hex(4)}"
        if not await self._redis.set(self._keys.active_rollout(plan.route), rollout_id, nx=True):
            active = await self._redis.get(self._keys.active_rollout(plan.route))
            raise RolloutConflict(f"route {plan.route!r} already has an active rollout ({active})")
        record = {
            "id": rollout_id,
            "route": plan.route,
            "strategy": strategy,
            "rollback": rollback,
            "smoke_tests": smoke_tests or [],
            "plan": raw,
            "created_at": self._clock(),
            "created_by": actor,
            "state": state_to_dict(State()),
            "tests": {
                "error_rate": {"test": asdict(RateTest()), "consumed": [0, 0, 0, 0]},
                # Requests slower than the baseline's p95 edge, frozen when the rollout starts.
                "slow_requests": {
                    "test": asdict(RateTest(alpha=LATENCY_ALPHA)),
                    "consumed": [0, 0, 0, 0],
                },
            },
            "latency_edge": None,
            "version": 0,
        }
        await self._save(record)
        await self._redis.sadd(self._keys.rollouts, rollout_id)
        return record

    async def get(self, rollout_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._keys.rollout(rollout_id))
        return None if raw is None else dict(json.loads(raw))

    async def all(self) -> list[dict[str, Any]]:
        ids = sorted(await self._redis.smembers(self._keys.rollouts))
        records = [await self.get(i) for i in ids]
        return [r for r in records if r is not None]

    async def _save(self, record: dict[str, Any]) -> None:
        """Compare-and-set on the record's version: a concurrent change makes this one fail."""
        expected = record["version"]
        record["version"] = expected + 1
        if not await self._save_script(
            keys=[self._keys.rollout(record["id"])], args=[expected, json.dumps(record)]
        ):
            raise RolloutConflict(f"rollout {record['id']} changed meanwhile; try again")
        if Status(record["state"]["status"]) in FINAL:
            await self._redis.delete(self._keys.active_rollout(record["route"]))

    async def command(self, rollout_id: str, name: str) -> dict[str, Any] | None:
        for _ in range(3):
            try:
                return await self._command_once(rollout_id, name)
            except RolloutConflict:
                continue  # the runner stepped it meanwhile: apply to the fresh state
        raise RolloutConflict(f"rollout {rollout_id} keeps changing; try again")

    async def _command_once(self, rollout_id: str, name: str) -> dict[str, Any] | None:
        record = await self.get(rollout_id)
        if record is None:
            return None
        plan = CanaryPlan.model_validate(record["plan"])
        state, actions = command(plan, state_from_dict(record["state"]), name, self._clock())
        state = await self._apply(plan, state, actions, f"{name} by request")
        record["state"] = state_to_dict(state)
        await self._save(record)
        return record

    async def step_all(self) -> None:
        for record in await self.all():
            if Status(record["state"]["status"]) not in FINAL:
                try:
                    await self.step(record)
                except Exception:  # one broken rollout must not stop the others
                    log.exception("rollout %s: step failed", record["id"])

    async def step(self, record: dict[str, Any]) -> None:
        plan = CanaryPlan.model_validate(record["plan"])
        state = state_from_dict(record["state"])
        now = self._clock()
        if state.status is Status.PENDING:
            await self._register_candidate(plan)
            failed = await self._smoke(plan, record, now)
            if failed is not None:
                state = replace(state, status=Status.ROLLED_BACK).note(now, "rolled_back", failed)
            else:
                record["latency_edge"] = await self._latency_edge(plan)
                state, actions = start(plan, state, now)
                state = await self._apply(plan, state, actions, "rollout started")
        elif state.status is Status.RUNNING and state.generation is not None:
            seen = await self._observe(plan, record, state, now)
            before = state
            state, actions = tick(plan, state, seen)
            if state.status is Status.ROLLED_BACK and record.get("rollback") == "manual":
                state, actions = hold_for_decision(before, state, now)
            state = await self._apply(
                plan, state, actions, state.history[-1].detail if state.history else ""
            )
        record["state"] = state_to_dict(state)
        await self._save(record)

    async def _smoke(self, plan: CanaryPlan, record: dict[str, Any], now: float) -> str | None:
        """Run the plan's smoke tests on the candidate's upstreams; the reason if one failed."""
        tests = [SmokeTest.model_validate(t) for t in record.get("smoke_tests", [])]
        if not tests:
            return None
        results = await run_smoke_tests(tests, plan.candidate.upstreams)
        record["smoke_results"] = [asdict(r) for r in results]
        failed = [r for r in results if not r.ok]
        if failed:
            return "smoke tests failed before any user traffic: " + "; ".join(
                f"{r.name}: {r.detail}" for r in failed
            )
        return None

    async def _register_candidate(self, plan: CanaryPlan) -> None:
        document = await self._store.read()
        assert document is not None
        route = edits.find_route(document, plan.route)
        body = {
            "version": plan.candidate.version,
            "upstreams": plan.candidate.upstreams,
            "weight": 0,
        }
        current = next((t for t in route.tracks if t.name == plan.candidate.track), None)
        if current is not None and (current.version, current.upstreams) == (
            plan.candidate.version,
            plan.candidate.upstreams,
        ):
            return
        body["weight"] = current.weight if current is not None else 0
        new = edits.put_track(document, plan.route, plan.candidate.track, body)
        await self._store.write(
            new,
            document.generation,
            Change(
                ACTOR,
                f"register {plan.candidate.version}",
                "put_track",
                f"routes/{plan.route}/tracks/{plan.candidate.track}",
            ),
            epoch=self._epoch(),
        )

    async def _apply(
        self, plan: CanaryPlan, state: State, actions: list[SetWeights], reason: str
    ) -> State:
        for action in actions:
            document = await self._store.read()
            assert document is not None
            weights = {
                plan.candidate.track: action.candidate,
                plan.baseline: round(100 - action.candidate, 2),
            }
            new = edits.set_weights(document, plan.route, weights)
            stored = await self._store.write(
                new,
                document.generation,
                Change(ACTOR, reason, "set_weights", f"routes/{plan.route}/weights"),
                epoch=self._epoch(),
            )
            if state.status not in FINAL:
                state = written(state, stored.generation)
        return state

    async def _observe(
        self, plan: CanaryPlan, record: dict[str, Any], state: State, now: float
    ) -> Observation:
        acks = await self._store.acks()
        acked = bool(acks) and all(a.generation >= (state.generation or 0) for a in acks.values())
        if not acked:
            return Observation(now, False)
        rollback: list[Assessment] = []
        success: list[Assessment] = []
        try:
            spans = {
                check.window
                for check in (*plan.canary_metrics.primary, *plan.canary_metrics.secondary)
            }
            reads = {span: await self._windows.read(plan.route, span) for span in spans}
            since_start = await self._windows.read(
                plan.route, max(10.0, now - record["created_at"])
            )
        except (RedisError, OSError) as exc:  # the store is down: an error, never a failure
            down = Assessment("metrics", Verdict.ERROR, None, "", 0, f"metrics unavailable: {exc}")
            return Observation(now, True, (down,), ())
        # Rollback conditions look at the shortest metric window (the whole rollout without one).
        shortest = reads[min(spans)] if spans else since_start
        candidate = _arm(shortest[2], plan.candidate.track)
        phase = plan.phases[state.phase]
        for condition in phase.rollback_if:
            rollback.append(
                breached(condition.metric, condition.threshold, candidate, MIN_REQUESTS)
            )
        if plan.comparison.method == "statistical":
            merged = since_start[2]
            rollback.append(
                self._compare(plan, record, merged, "error_rate", lambda w: sum(w.errors.values()))
            )
            edge = record.get("latency_edge")
            if edge is not None:
                rollback.append(
                    self._compare(
                        plan, record, merged, "slow_requests", lambda w: sum(w.latency[edge + 1 :])
                    )
                )
        for check in (*plan.canary_metrics.primary, *plan.canary_metrics.secondary):
            window = _arm(reads[check.window][2], plan.candidate.track)
            minimum = (
                MIN_RATINGS
                if check.name in ("hallucination_rate", "user_satisfaction")
                else MIN_REQUESTS
            )
            result = assess(
                check.name, parse_threshold(check.threshold, check.name), window, minimum
            )
            # Quality signals arrive slowly: without them a phase is not held forever.
            if check in plan.canary_metrics.secondary and result.verdict is Verdict.INCONCLUSIVE:
                continue
            success.append(result)
        for metric, text in plan.config.success_criteria.items():
            success.append(assess(metric, parse_threshold(text, metric), candidate, MIN_REQUESTS))
        return Observation(now, True, tuple(rollback), tuple(success))

    async def _latency_edge(self, plan: CanaryPlan) -> int | None:
        """The bucket holding the baseline's p95 over the last 5 minutes (None if too little)."""
        _, _, merged = await self._windows.read(plan.route, 300)
        baseline = _arm(merged, plan.baseline)
        if baseline is None or baseline.requests < MIN_REQUESTS:
            return None
        return percentile_index(baseline.latency, 0.95)

    def _compare(
        self,
        plan: CanaryPlan,
        record: dict[str, Any],
        merged: dict[tuple[str, str], TrackWindow],
        name: str,
        events: Callable[[TrackWindow], int],
    ) -> Assessment:
        """Feed one sequential test the counts that arrived since its last look."""
        c = _arm(merged, plan.candidate.track) or TrackWindow()
        b = _arm(merged, plan.baseline) or TrackWindow()
        slot = record["tests"][name]
        totals = [c.requests, events(c), b.requests, events(b)]
        delta = [max(0, total - was) for total, was in zip(totals, slot["consumed"], strict=True)]
        test = RateTest(**slot["test"])
        test.add(Interval(delta[0], delta[1], delta[2], delta[3]))
        slot["test"], slot["consumed"] = asdict(test), totals
        verdict = {"fail": Verdict.FAIL, "pass": Verdict.PASS}.get(
            test.verdict(MIN_REQUESTS), Verdict.INCONCLUSIVE
        )
        evidence = test.fail_evidence()
        return Assessment(
            f"{name}_vs_baseline",
            verdict,
            evidence,
            f"evidence >= {1 / test.alpha:g}",
            test.candidate_requests,
            f"{name.replace('_', ' ')} vs baseline: {test.candidate_events}/{test.candidate_requests} against "
            f"{test.baseline_events}/{test.baseline_requests} (evidence {evidence:.3g})",
        )


def _arm(merged: dict[tuple[str, str], TrackWindow], track: str) -> TrackWindow | None:
    found = [w for (name, _), w in merged.items() if name == track]
    if not found:
        return TrackWindow()
    total = TrackWindow()
    for w in found:
        total = _add(total, w)
    return total


def _add(a: TrackWindow, b: TrackWindow) -> TrackWindow:
    return replace(
        a,
        requests=a.requests + b.requests,
        assigned=a.assigned + b.assigned,
        errors={k: a.errors[k] + b.errors[k] for k in a.errors},
        latency=[x + y for x, y in zip(a.latency, b.latency, strict=True)],
        ttfb=[x + y for x, y in zip(a.ttfb, b.ttfb, strict=True)],
        feedback={
            k: a.feedback.get(k, 0) + b.feedback.get(k, 0) for k in {*a.feedback, *b.feedback}
        },
    )
