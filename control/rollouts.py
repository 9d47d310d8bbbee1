"""Rollouts persisted in Redis and stepped by a runner: the I/O around the pure strategies.

A rollout record (``{ns}:rollout:<id>``) holds the plan as written, the strategy's state, the
sequential tests' state, the arms' counts since the start (``control.accumulate``), the
checklist's attestations, the last verdicts and, for an A/B test, its report; so a restarted
control plane resumes the same phase with the same history. One rollout per route may be
active (``{ns}:rollout:active:<route>``).

Weight changes go through an outbox. A decision is saved first, with the weights it wants in
``desired`` (compare-and-set on the record's version); the weights are then written with a
guard on that version, so a decision that was overtaken (a command racing the runner) never
reaches the proxies, and a decision whose write was interrupted (a crash, a Redis outage) is
written by the next step. Each save appends the state's new events to ``{ns}:events``, in the
same script, for the webhooks.

Each ``step``: hold a pending rollout until its checklist is complete; register the candidate's
track (weight 0), check it is up and run the smoke tests; then judge the phase from the
fleet's metric windows once every live replica acked its weights. A promoted rollout gets its
post-deploy checks once their observation period is over.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from redis.exceptions import RedisError

from config import jsonsafe
from config.checks import Checklist
from config.keys import Keys
from config.metrics import TrackWindow, percentile_index
from config.plans import ABTestPlan, CanaryMetrics, CanaryPlan, SmokeTest, stored_plan
from config.schema import RoutingDocument
from config.thresholds import parse_threshold
from control import accumulate, edits, looks, waiting
from control.analysis.compare import compare
from control.analysis.verdict import Assessment, Verdict, assess
from control.smoke import probe, reachable, run_smoke_tests
from control.store import Change, DocumentStore, Fenced, Stale, Superseded
from control.strategies import ab, canary
from control.strategies.canary import (
    FINAL,
    Event,
    Observation,
    SetWeights,
    State,
    Status,
    hold_for_decision,
    tick,
    written,
)
from control.windows import WindowReader

log = logging.getLogger("splitgate.control.rollouts")

ACTOR = "splitgate-rollout"
EVENTS_MAX = 10_000
VERDICTS_MAX = 5_000

_SAVE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['version'] ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
for i = 4, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[i])
end
return 1
"""

Action = SetWeights | ab.SetAll
Probe = Callable[[str, str, int, str | None], Awaitable[tuple[bool, str]]]


class RolloutConflict(Exception):
    """Another rollout is active on the route, or the record changed meanwhile (HTTP 409)."""


class UnknownItem(Exception):
    """The rollout's checklist has no such item (HTTP 404)."""


def state_to_dict(state: State) -> dict[str, Any]:
    return asdict(state)


def state_from_dict(data: dict[str, Any]) -> State:
    return State(
        status=Status(data["status"]),
        phase=data["phase"],
        phase_started_at=data["phase_started_at"],
        generation=data["generation"],
        error_streak=data["error_streak"],
        errors=data["errors"],
        failure_streak=data["failure_streak"],
        failures=data["failures"],
        paused_from=Status(data["paused_from"]) if data["paused_from"] else None,
        history=tuple(Event(**e) for e in data["history"]),
    )


def plan_of(record: Mapping[str, Any]) -> CanaryPlan | ABTestPlan:
    plan = stored_plan(record["plan"])
    if record["strategy"] == "ab_test":
        return ABTestPlan.model_validate(plan)
    return CanaryPlan.model_validate(plan)


class Rollouts:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        store: DocumentStore,
        windows: WindowReader,
        clock: Callable[[], float] = time.time,
        epoch: Callable[[], int | None] = lambda: None,
        probe: Probe = probe,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._windows = windows
        self._clock = clock
        self._epoch = epoch
        self._probe = probe
        self._save_script = redis.register_script(_SAVE)

    async def create(
        self,
        plan: CanaryPlan | ABTestPlan,
        actor: str,
        strategy: str = "canary",
        smoke_tests: list[dict[str, Any]] | None = None,
        rollback: str = "automatic",
    ) -> dict[str, Any]:
        rollout_id = f"{plan.route}-{secrets.token_hex(4)}"
        if not await self._redis.set(self._keys.active_rollout(plan.route), rollout_id, nx=True):
            active = await self._redis.get(self._keys.active_rollout(plan.route))
            raise RolloutConflict(f"route {plan.route!r} already has an active rollout ({active})")
        try:
            return await self._create(rollout_id, plan, actor, strategy, smoke_tests, rollback)
        except BaseException:
            await self._redis.delete(self._keys.active_rollout(plan.route))
            raise

    async def _create(
        self,
        rollout_id: str,
        plan: CanaryPlan | ABTestPlan,
        actor: str,
        strategy: str,
        smoke_tests: list[dict[str, Any]] | None,
        rollback: str,
    ) -> dict[str, Any]:
        now = self._clock()
        document = await self._store.read()
        assert document is not None
        route = edits.find_route(document, plan.route)
        record = {
            "id": rollout_id,
            "route": plan.route,
            "strategy": strategy,
            "rollback": rollback,
            "smoke_tests": smoke_tests or [],
            "plan": plan.model_dump(mode="json"),
            "created_at": now,
            "created_by": actor,
            "state": state_to_dict(State()),
            "tests": looks.fresh_tests(),
            "latency_edge": None,
            "accumulator": None,
            "phase_counts": None,
            "checklist": _checklist_record(plan.checklist),
            "warnings": [
                f"recommended checklist item {item.name!r} is not confirmed"
                for item in plan.checklist.recommended
            ],
            "before_weights": {t.name: t.weight for t in route.tracks},
            "desired": None,
            "verdicts": [],
            "waiting_for": "the control plane's next step",
            "post_deploy": None,
            "report": None,
            "emitted": 0,
            "version": 0,
        }
        await self._save(record)
        await self._redis.sadd(self._keys.rollouts, rollout_id)
        return record

    async def get(self, rollout_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._keys.rollout(rollout_id))
        return None if raw is None else dict(json.loads(raw))

    async def all(self) -> list[dict[str, Any]]:
        """Every rollout record that reads; one that does not (hand-edited, truncated) is
        logged and skipped, so it never stops the others."""
        records = []
        for rollout_id in sorted(await self._redis.smembers(self._keys.rollouts)):
            try:
                record = await self.get(rollout_id)
                if record is not None:
                    _needs_step(record, 0.0)  # has the fields every reader relies on
            except (ValueError, TypeError, KeyError) as exc:
                log.error("rollout %s: the stored record does not read: %r", rollout_id, exc)
                continue
            if record is not None:
                records.append(record)
        return records

    async def verdicts(self, rollout_id: str, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` looks, newest first, each with its verdicts and figures."""
        entries = await self._redis.xrevrange(self._keys.rollout_verdicts(rollout_id), count=limit)
        return [{"id": entry_id, **json.loads(fields["look"])} for entry_id, fields in entries]

    async def _save(self, record: dict[str, Any]) -> None:
        """Compare-and-set on the record's version: a concurrent change makes this one fail.
        The state's events since the last save are appended to the event stream with it."""
        expected = record["version"]
        history = record["state"]["history"]
        events = [self._event(record, e) for e in history[record["emitted"] :]]
        record["version"] = expected + 1
        record["emitted"] = len(history)
        if not await self._save_script(
            keys=[self._keys.rollout(record["id"]), self._keys.events],
            args=[expected, jsonsafe.dumps(record), EVENTS_MAX, *events],
        ):
            raise RolloutConflict(f"rollout {record['id']} changed meanwhile; try again")
        if Status(record["state"]["status"]) in FINAL and record["desired"] is None:
            # Only this rollout's own claim is released, once its last weights are written.
            active = self._keys.active_rollout(record["route"])
            if await self._redis.get(active) == record["id"]:
                await self._redis.delete(active)

    def _event(self, record: dict[str, Any], event: dict[str, Any]) -> str:
        plan = record["plan"]
        return jsonsafe.dumps(
            {
                "rollout": record["id"],
                "route": record["route"],
                "strategy": record["strategy"],
                "kind": event["kind"],
                "detail": event["detail"],
                "status": record["state"]["status"],
                "phase": record["state"]["phase"],
                "version": plan.get("candidate", {}).get("version"),
                "at": event["at"],
            }
        )

    # Commands and attestations, from the admin API ------------------------------------------

    async def command(self, rollout_id: str, name: str) -> dict[str, Any] | None:
        for _ in range(5):
            try:
                return await self._command_once(rollout_id, name)
            except RolloutConflict:
                continue  # the runner stepped it meanwhile: apply to the fresh state
        raise RolloutConflict(f"rollout {rollout_id} keeps changing; try again")

    async def _command_once(self, rollout_id: str, name: str) -> dict[str, Any] | None:
        record = await self.get(rollout_id)
        if record is None:
            return None
        plan = plan_of(record)
        state = state_from_dict(record["state"])
        now = self._clock()
        actions: list[Action]
        if isinstance(plan, ABTestPlan):
            state, all_actions = ab.command(plan, state, name, now, record["before_weights"])
            actions = list(all_actions)
        else:
            state, weight_actions = canary.command(plan, state, name, now)
            actions = list(weight_actions)
        await self._commit(record, state, actions, f"{name} by request")
        return record

    async def attest(
        self, rollout_id: str, item: str, actor: str, note: str
    ) -> dict[str, Any] | None:
        """Record that a checklist item is done, by whom and when (``rollout check``)."""
        for _ in range(5):
            record = await self.get(rollout_id)
            if record is None:
                return None
            status = Status(record["state"]["status"])
            if status in FINAL:
                raise canary.CommandRefused("check an item of", status)
            group = next(
                (g for g in ("required", "recommended") if item in record["checklist"][g]), None
            )
            if group is None:
                raise UnknownItem(
                    f"the plan's checklist has no item {item!r} "
                    f"(it has: {', '.join(_items(record)) or 'none'})"
                )
            record["checklist"][group][item] = {
                "by": actor,
                "at": self._clock(),
                "how": "attested",
                "note": note,
            }
            record["warnings"] = _warnings(record)
            if status is Status.PENDING:
                record["waiting_for"] = (
                    waiting.waiting_for_checklist(record) or "the control plane's next step"
                )
            try:
                await self._save(record)
            except RolloutConflict:
                continue
            return record
        raise RolloutConflict(f"rollout {rollout_id} keeps changing; try again")

    # The runner ---------------------------------------------------------------------------

    async def step_all(self) -> None:
        for record in await self.all():
            if _needs_step(record, self._clock()):
                try:
                    await self.step(record)
                except Exception:  # one broken rollout must not stop the others
                    log.exception("rollout %s: step failed", record["id"])

    async def step(self, record: dict[str, Any]) -> None:
        if record["desired"] is not None:
            await self._flush(record)  # an earlier decision's weights first
            return
        plan = plan_of(record)
        state = state_from_dict(record["state"])
        now = self._clock()
        if state.status in FINAL:
            if isinstance(plan, CanaryPlan):
                await self._post_deploy(plan, record, now)
            return
        actions: list[Action] = []
        if state.status is Status.PENDING:
            missing = await self._check_items(record)
            if missing:
                record["waiting_for"] = missing
                await self._save(record)
                return
            await self._restart_counts(record, now)
            if isinstance(plan, ABTestPlan):
                state, ab_actions = ab.start(plan, state, now)
                actions = list(ab_actions)
            else:
                state, actions = await self._begin(plan, record, state, now)
        elif state.status is Status.RUNNING and state.generation is not None:
            if isinstance(plan, ABTestPlan):
                state, actions = await self._ab_tick(plan, record, state, now)
            else:
                seen = await self._observe(plan, record, state, now)
                before = state
                state, weight_actions = tick(plan, state, seen)
                actions = list(weight_actions)
                if state.status is Status.ROLLED_BACK and record["rollback"] == "manual":
                    state, held = hold_for_decision(before, state, now)
                    actions = list(held)
        reason = state.history[-1].detail if state.history else ""
        await self._commit(record, state, actions, reason)

    async def _commit(
        self, record: dict[str, Any], state: State, actions: list[Action], reason: str
    ) -> None:
        """Save the decision with the weights it wants, then write them (the outbox)."""
        record["state"] = state_to_dict(state)
        if actions:
            record["desired"] = {"weights": _weights(record, actions[-1]), "reason": reason}
        now = self._clock()
        if state.status is Status.PROMOTED and record["post_deploy"] is None:
            plan = CanaryPlan.model_validate(stored_plan(record["plan"]))
            # A record from before ``after_promotion`` keeps the promotion it was started with.
            if record["plan"].get("after_promotion", "candidate") == "baseline":
                record["desired"] = _handover(plan)
                state = state.note(now, "baseline_updated", record["desired"]["reason"])
                record["state"] = state_to_dict(state)
            after = plan.post_deploy.after
            try:
                track = f"@{plan.candidate.version}"  # on either track, whatever the handover
                counts = await accumulate.start(self._windows, plan.route, [track], now)
            except (RedisError, OSError):
                counts = None  # judged from the windows since ``now`` instead
            record["post_deploy"] = {
                "status": "scheduled",
                "due_at": now + after,
                "checks": [],
                "counts": counts,
            }
        record["waiting_for"] = waiting.waiting_for(record, state, now)
        await self._save(record)
        if record["desired"] is not None:
            try:
                await self._flush(record)
            except (RolloutConflict, Fenced, RedisError, OSError) as exc:
                # The decision is saved: the runner's next step writes its weights.
                log.warning("rollout %s: weights left to the next step: %s", record["id"], exc)

    async def _flush(self, record: dict[str, Any]) -> None:
        """Write the weights the saved record wants, unless a newer version overtook it."""
        desired = record["desired"]
        for _ in range(3):
            document = await self._store.read()
            assert document is not None
            route = edits.find_route(document, record["route"])
            present = {t.name for t in route.tracks}
            weights = {name: w for name, w in desired["weights"].items() if name in present}
            if record["strategy"] == "ab_test":
                weights = {name: weights.get(name, 0.0) for name in present}
            try:
                new = _handed_over(document, record["route"], desired.get("track"))
                new = edits.set_weights(new, record["route"], weights)
            except edits.EditError as exc:
                # The route changed under the rollout (a track removed or given weight by
                # hand): end it with the reason rather than leave it waiting for weights.
                log.error("rollout %s: cannot set weights %s: %s", record["id"], weights, exc)
                record["desired"] = None
                record["weights_error"] = str(exc)
                state = state_from_dict(record["state"])
                why = f"the weights cannot be written: {exc}"
                if state.status not in FINAL:
                    state = replace(state, status=Status.ABORTED, generation=None)
                    state = state.note(self._clock(), "aborted", why)
                else:
                    state = state.note(self._clock(), "error", why)
                record["state"] = state_to_dict(state)
                record["waiting_for"] = ""
                await self._save(record)
                return
            try:
                stored = await self._store.write(
                    new,
                    document.generation,
                    Change(
                        ACTOR, desired["reason"], "set_weights", f"routes/{record['route']}/weights"
                    ),
                    epoch=self._epoch(),
                    guard=(self._keys.rollout(record["id"]), record["version"]),
                )
            except Stale:
                continue
            except Superseded:
                return  # a newer version of the record decides (and writes) now
            state = state_from_dict(record["state"])
            if state.status not in FINAL:
                record["state"] = state_to_dict(written(state, stored.generation))
                await self._start_counting(record, stored.generation, self._clock())
            record["desired"] = None
            record["waiting_for"] = waiting.waiting_for(
                record, state_from_dict(record["state"]), self._clock()
            )
            await self._save(record)
            return
        raise RolloutConflict(f"rollout {record['id']}: the routing document keeps changing")

    # Pending: checklist, registration, smoke tests -----------------------------------------

    async def _check_items(self, record: dict[str, Any]) -> str:
        """Run the probes of items still open; what the rollout still waits for ("" if none)."""
        plan = plan_of(record)
        for item in (*plan.checklist.required, *plan.checklist.recommended):
            group = "required" if item in plan.checklist.required else "recommended"
            if item.probe is None or record["checklist"][group][item.name] is not None:
                continue
            p = item.probe
            ok, detail = await self._probe(p.url, p.method, p.expect_status, p.expect_regex)
            if ok:
                record["checklist"][group][item.name] = {
                    "by": "probe",
                    "at": self._clock(),
                    "how": "probe",
                    "note": f"{p.method} {p.url}: {detail}",
                }
            record.setdefault("probe_results", {})[item.name] = detail
        record["warnings"] = _warnings(record)
        return waiting.waiting_for_checklist(record)

    async def _restart_counts(self, record: dict[str, Any], now: float) -> None:
        """Judge only what happens from the start on: a rollout may have waited for its
        checklist for hours, and the weights to restore are the ones it found then."""
        record["accumulator"] = None  # counted from the first look every replica acked
        record["phase_counts"] = None
        record["tests"] = looks.fresh_tests()
        document = await self._store.read()
        assert document is not None
        route = edits.find_route(document, record["route"])
        record["before_weights"] = {t.name: t.weight for t in route.tracks}

    async def _begin(
        self, plan: CanaryPlan, record: dict[str, Any], state: State, now: float
    ) -> tuple[State, list[Action]]:
        await self._register_candidate(plan)
        failed = await self._verify(plan, record)
        if failed is not None:
            state = replace(state, status=Status.ROLLED_BACK).note(now, "rolled_back", failed)
            return state, []
        record["latency_edge"] = await self._latency_edge(plan)
        state, actions = canary.start(plan, state, now)
        return state, list(actions)

    async def _verify(self, plan: CanaryPlan, record: dict[str, Any]) -> str | None:
        """Is the new version up, and does it pass the smoke tests? The reason if not."""
        up = await reachable(plan.candidate.upstreams, plan.post_deploy.health_path)
        record["up"] = [asdict(r) for r in up]
        down = [r for r in up if not r.ok]
        if down:
            return "the new version is not up: " + "; ".join(
                f"{r.upstream}: {r.detail}" for r in down
            )
        tests = [SmokeTest.model_validate(t) for t in record["smoke_tests"]]
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
        """Put the new version on the candidate's track at 0 %: no user reaches it before it
        is up, has passed its smoke tests and the first phase's weights are written. A track
        that carried users (the previous version) hands them to the baseline."""
        cand = plan.candidate
        for _ in range(3):
            document = await self._store.read()
            assert document is not None
            route = edits.find_route(document, plan.route)
            current = next((t for t in route.tracks if t.name == cand.track), None)
            if current is not None and (current.version, current.upstreams) == (
                cand.version,
                cand.upstreams,
            ):
                return
            held = current.weight if current is not None else 0.0
            body = {"version": cand.version, "upstreams": cand.upstreams, "weight": held}
            new = edits.put_track(document, plan.route, cand.track, body)
            if held:
                base = edits.find_track(route, plan.baseline).weight
                new = edits.set_weights(
                    new, plan.route, {cand.track: 0.0, plan.baseline: base + held}
                )
            change = Change(
                ACTOR,
                f"register {cand.version} at 0%",
                "put_track",
                f"routes/{plan.route}/tracks/{cand.track}",
            )
            try:
                await self._store.write(new, document.generation, change, epoch=self._epoch())
            except Stale:
                continue  # another writer moved the document on: redo the edit on it
            return
        raise RolloutConflict(f"route {plan.route!r}: the routing document keeps changing")

    # Running: observation and judgement ----------------------------------------------------

    async def _acked(self, state: State) -> bool:
        # Every live replica applies the stored document (its digest too), this generation or later.
        return await self._store.converged(state.generation or 0)

    async def _observe(
        self, plan: CanaryPlan, record: dict[str, Any], state: State, now: float
    ) -> Observation:
        acked = await self._acked(state)
        record["acked"] = acked
        if not acked:
            return Observation(now, False)
        cand, base = plan.candidate.track, plan.baseline
        await self._start_counting(record, state.generation, now)
        counts = record.get("phase_counts") or {}
        if record.get("accumulator") is None or counts.get("generation") != state.generation:
            return Observation(now, True, (_unreadable("cannot start the counts"),), ())
        try:
            since = await accumulate.totals(
                self._windows, plan.route, record["accumulator"], [cand, base], now
            )
            phase = await accumulate.totals(
                self._windows, plan.route, record["phase_counts"], [cand, base], now
            )
        except (RedisError, OSError) as exc:  # the store is down: an error, never a failure
            return Observation(now, True, (_unreadable(str(exc)),), ())
        rollback, success = looks.judge_phase(plan, state.phase, phase[cand])
        compared = []
        if plan.comparison.method == "statistical":
            for name in looks.TESTS:
                if name == "slow_requests" and record["latency_edge"] is None:
                    continue
                compared.append(looks.compare(record, plan, since[cand], since[base], name))
        phase_s = now - record["phase_counts"]["from"]
        rollout_s = now - record["accumulator"].get("from", record["created_at"])
        verdicts = [
            *(looks.record_verdict(v, "rollback", phase[base], phase_s) for v in rollback),
            *(looks.record_verdict(v, "rollback", since[base], rollout_s) for v in compared),
            *(looks.record_verdict(v, "success", phase[base], phase_s) for v in success),
        ]
        await self._record_look(record, now, state, verdicts)
        return Observation(now, True, (*rollback, *compared), tuple(success))

    async def _start_counting(
        self, record: dict[str, Any], generation: int | None, now: float
    ) -> None:
        """Count from the moment the rollout's weights, then each phase's, were written: what
        the windows held before (other weights, the hours before a test) is not judged.

        Called when the weights are written; if Redis failed then, the next look starts the
        counts instead (a little later, never earlier)."""
        phase_generation = (record.get("phase_counts") or {}).get("generation")
        if record.get("accumulator") is not None and phase_generation == generation:
            return
        arms = _arms(record)
        try:
            if record.get("accumulator") is None:
                started = await accumulate.start(self._windows, record["route"], arms, now)
                record["accumulator"] = {**started, "from": now}
                record["tests"] = looks.fresh_tests()
            if phase_generation != generation:
                counts = await accumulate.start(self._windows, record["route"], arms, now)
                record["phase_counts"] = {**counts, "from": now, "generation": generation}
        except (RedisError, OSError) as exc:
            log.warning("rollout %s: counts start at the next look: %s", record["id"], exc)

    async def _record_look(
        self, record: dict[str, Any], now: float, state: State, verdicts: list[dict[str, Any]]
    ) -> None:
        record["verdicts"] = verdicts
        look = {"at": now, "phase": state.phase, "verdicts": verdicts}
        try:
            await self._redis.xadd(
                self._keys.rollout_verdicts(record["id"]),
                {"look": jsonsafe.dumps(look)},
                maxlen=VERDICTS_MAX,
                approximate=True,
            )
        except RedisError as exc:
            log.warning("rollout %s: verdicts not recorded: %s", record["id"], exc)

    async def _latency_edge(self, plan: CanaryPlan) -> int | None:
        """The bucket holding the baseline's p95 over the last 5 minutes (None if too little)."""
        _, _, merged = await self._windows.read(plan.route, 300)
        baseline = accumulate.arm(merged, plan.baseline)
        if baseline.requests < looks.MIN_REQUESTS:
            return None
        return percentile_index(baseline.latency, 0.95)

    async def _ab_tick(
        self, plan: ABTestPlan, record: dict[str, Any], state: State, now: float
    ) -> tuple[State, list[Action]]:
        if not await self._acked(state):
            return state, []
        arms = list(plan.split)
        await self._start_counting(record, state.generation, now)
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

    # After promotion ----------------------------------------------------------------------

    async def _post_deploy(self, plan: CanaryPlan, record: dict[str, Any], now: float) -> None:
        """Health and metrics of the promoted version once ``post_deploy.after`` has passed."""
        post = record["post_deploy"]
        if post is None or post["status"] != "scheduled" or now < post["due_at"]:
            return
        settings = plan.post_deploy
        checks: list[dict[str, Any]] = []
        if settings.health:
            for r in await reachable(plan.candidate.upstreams, settings.health_path):
                checks.append(
                    {
                        "check": "health",
                        "upstream": r.upstream,
                        "verdict": "pass" if r.ok else "fail",
                        "detail": r.detail,
                    }
                )
        criteria = settings.criteria or {
            c.name: c.threshold for c in (plan.canary_metrics.primary or CanaryMetrics().primary)
        }
        track = f"@{plan.candidate.version}"
        window: TrackWindow | None
        try:
            # Exactly the period since promotion: the counts started then (``_commit``).
            counts = post.get("counts") or accumulate.new_accumulator(
                post["due_at"] - settings.after
            )
            window = (await accumulate.totals(self._windows, plan.route, counts, [track], now))[
                track
            ]
        except (RedisError, OSError):
            window = None
        for metric, text in criteria.items():
            threshold = parse_threshold(text, metric)
            c = plan.comparison
            a = assess(metric, threshold, window, c.confidence, design_effect=c.design_effect)
            checks.append({"check": metric, "verdict": a.verdict.value, "detail": a.reason})
        verdicts = {c["verdict"] for c in checks}
        status = (
            "failed"
            if "fail" in verdicts
            else "inconclusive"
            if verdicts & {"inconclusive", "error"}
            else "passed"
        )
        record["post_deploy"] = {**post, "status": status, "checks": checks, "at": now}
        summary = "; ".join(f"{c['check']}: {c['detail']}" for c in checks)
        state = state_from_dict(record["state"]).note(now, "post_deploy", f"{status}: {summary}")
        record["state"] = state_to_dict(state)
        record["waiting_for"] = ""
        await self._save(record)


def _handover(plan: CanaryPlan) -> dict[str, Any]:
    """The outbox entry that gives the baseline track the promoted version and all traffic."""
    base, cand = plan.baseline, plan.candidate
    return {
        "weights": {base: 100.0, cand.track: 0.0},
        "track": {"name": base, "version": cand.version, "upstreams": list(cand.upstreams)},
        "reason": f"promoted: {base} now serves {cand.version}, {cand.track} goes back to 0%",
    }


def _handed_over(
    document: RoutingDocument, route: str, track: Mapping[str, Any] | None
) -> RoutingDocument:
    """``document`` with the handover's track replaced (its weight kept), if there is one."""
    if track is None:
        return document
    current = edits.find_track(edits.find_route(document, route), track["name"])
    body = {"version": track["version"], "upstreams": track["upstreams"], "weight": current.weight}
    return edits.put_track(document, route, track["name"], body)


def _arms(record: Mapping[str, Any]) -> list[str]:
    plan = record["plan"]
    if record["strategy"] == "ab_test":
        return list(plan["split"])
    return [plan["candidate"]["track"], plan["baseline"]]


def _unreadable(why: str) -> Assessment:
    return Assessment("metrics", Verdict.ERROR, None, "", 0, f"metrics unavailable: {why}")


def _checklist_record(checklist: Checklist) -> dict[str, dict[str, Any]]:
    return {
        "required": {item.name: None for item in checklist.required},
        "recommended": {item.name: None for item in checklist.recommended},
    }


def _items(record: Mapping[str, Any]) -> list[str]:
    return [*record["checklist"]["required"], *record["checklist"]["recommended"]]


def _warnings(record: Mapping[str, Any]) -> list[str]:
    return [
        f"recommended checklist item {name!r} is not confirmed"
        for name, done in record["checklist"]["recommended"].items()
        if done is None
    ]


def _needs_step(record: Mapping[str, Any], now: float) -> bool:
    if record["desired"] is not None:
        return True
    if Status(record["state"]["status"]) not in FINAL:
        return True
    post = record["post_deploy"]
    return post is not None and post["status"] == "scheduled" and now >= post["due_at"]


def _weights(record: Mapping[str, Any], action: Action) -> dict[str, float]:
    if isinstance(action, ab.SetAll):
        return dict(action.weights)
    plan = record["plan"]
    return {
        plan["candidate"]["track"]: action.candidate,
        plan["baseline"]: round(100 - action.candidate, 2),
    }
