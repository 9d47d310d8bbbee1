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

from config.keys import Keys
from config.metrics import TrackWindow, percentile_index
from config.plans import ABTestPlan, CanaryMetrics, CanaryPlan, Checklist, SmokeTest
from config.thresholds import Threshold, parse_threshold
from control import accumulate, edits
from control.analysis.compare import compare
from control.analysis.sequential import Interval, RateTest
from control.analysis.verdict import Assessment, Verdict, assess, breached, min_sample
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
MIN_REQUESTS = 100
MIN_RATINGS = 30
EVENTS_MAX = 10_000
VERDICTS_MAX = 5_000

TESTS: dict[str, float] = {
    "error_rate": 0.01,
    "slow_requests": 0.002,
    "hallucinations": 0.001,
    "bad_ratings": 0.001,
}
"""Each comparison with the baseline and its share of the false-rollback budget (alpha). A
healthy candidate is rolled back by one of them in at most 1.4 % of rollouts (their sum); the
simulations in ``bench/decisions.py`` measure under 1 % for the four together. The quality
tests get little alpha: their signals are sparse, and the regressions worth a rollback
(hallucinations several times as frequent) still reach 1/alpha within a few looks."""

_COUNTS: dict[str, Callable[[TrackWindow, int | None], tuple[int, int]]] = {
    "error_rate": lambda w, _: (w.requests, sum(w.errors.values())),
    # Requests slower than the baseline's p95 bucket, frozen when the rollout starts.
    "slow_requests": lambda w, edge: (w.requests, sum(w.latency[(edge or 0) + 1 :])),
    "hallucinations": lambda w, _: (
        w.feedback.get("hallucination_yes", 0) + w.feedback.get("hallucination_no", 0),
        w.feedback.get("hallucination_yes", 0),
    ),
    "bad_ratings": lambda w, _: (w.feedback.get("rating_n", 0), w.feedback.get("rating_bad", 0)),
}
_MINIMUM = {"error_rate": MIN_REQUESTS, "slow_requests": MIN_REQUESTS}

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
    if record["strategy"] == "ab_test":
        return ABTestPlan.model_validate(record["plan"])
    return CanaryPlan.model_validate(record["plan"])


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
            "tests": _fresh_tests(),
            "latency_edge": None,
            "accumulator": accumulate.new_accumulator(now),
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
        ids = sorted(await self._redis.smembers(self._keys.rollouts))
        records = [await self.get(i) for i in ids]
        return [r for r in records if r is not None]

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
            args=[expected, json.dumps(record), EVENTS_MAX, *events],
        ):
            raise RolloutConflict(f"rollout {record['id']} changed meanwhile; try again")
        if Status(record["state"]["status"]) in FINAL and record["desired"] is None:
            # Only this rollout's own claim is released, once its last weights are written.
            active = self._keys.active_rollout(record["route"])
            if await self._redis.get(active) == record["id"]:
                await self._redis.delete(active)

    def _event(self, record: dict[str, Any], event: dict[str, Any]) -> str:
        plan = record["plan"]
        return json.dumps(
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
                    _waiting_for_checklist(record) or "the control plane's next step"
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
            after = CanaryPlan.model_validate(record["plan"]).post_deploy.after
            record["post_deploy"] = {"status": "scheduled", "due_at": now + after, "checks": []}
        record["waiting_for"] = _waiting_for(record, state, now)
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
                new = edits.set_weights(document, record["route"], weights)
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
            record["desired"] = None
            record["waiting_for"] = _waiting_for(
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
        return _waiting_for_checklist(record)

    async def _restart_counts(self, record: dict[str, Any], now: float) -> None:
        """Judge only what happens from the start on: a rollout may have waited for its
        checklist for hours, and the weights to restore are the ones it found then."""
        record["accumulator"] = accumulate.new_accumulator(now)
        record["tests"] = _fresh_tests()
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

    # Running: observation and judgement ----------------------------------------------------

    async def _acked(self, state: State) -> bool:
        acks = await self._store.acks()
        return bool(acks) and all(a.generation >= (state.generation or 0) for a in acks.values())

    async def _observe(
        self, plan: CanaryPlan, record: dict[str, Any], state: State, now: float
    ) -> Observation:
        if not await self._acked(state):
            return Observation(now, False)
        rollback: list[Assessment] = []
        success: list[Assessment] = []
        checks = (*plan.canary_metrics.primary, *plan.canary_metrics.secondary)
        try:
            spans = {check.window for check in checks}
            reads = {span: await self._windows.read(plan.route, span) for span in spans}
            arms = [plan.candidate.track, plan.baseline]
            since = await accumulate.totals(
                self._windows, plan.route, record["accumulator"], arms, now
            )
        except (RedisError, OSError) as exc:  # the store is down: an error, never a failure
            down = Assessment("metrics", Verdict.ERROR, None, "", 0, f"metrics unavailable: {exc}")
            return Observation(now, True, (down,), ())
        # Rollback conditions look at the shortest metric window (the whole rollout without one).
        candidate = (
            accumulate.arm(reads[min(spans)][2], plan.candidate.track)
            if spans
            else since[plan.candidate.track]
        )
        phase = plan.phases[state.phase]
        for condition in phase.rollback_if:
            needed = self._needed(plan, condition.metric, condition.threshold)
            rollback.append(breached(condition.metric, condition.threshold, candidate, needed))
        if plan.comparison.method == "statistical":
            for name in TESTS:
                if name == "slow_requests" and record["latency_edge"] is None:
                    continue
                rollback.append(
                    self._compare(
                        plan, record, since[plan.candidate.track], since[plan.baseline], name
                    )
                )
        for check in checks:
            window = accumulate.arm(reads[check.window][2], plan.candidate.track)
            threshold = parse_threshold(check.threshold, check.name)
            result = assess(
                check.name, threshold, window, self._needed(plan, check.name, threshold)
            )
            # Quality signals arrive slowly: without them a phase is not held forever.
            if (
                check in plan.canary_metrics.secondary
                and result.verdict is Verdict.INCONCLUSIVE
                and not plan.canary_metrics.hold_for_secondary
            ):
                continue
            success.append(result)
        for metric, text in plan.config.success_criteria.items():
            threshold = parse_threshold(text, metric)
            success.append(
                assess(metric, threshold, candidate, self._needed(plan, metric, threshold))
            )
        await self._record_look(record, now, state, rollback, success)
        return Observation(now, True, tuple(rollback), tuple(success))

    async def _record_look(
        self,
        record: dict[str, Any],
        now: float,
        state: State,
        rollback: list[Assessment],
        success: list[Assessment],
    ) -> None:
        verdicts = [
            {**asdict(a), "role": role}
            for role, group in (("rollback", rollback), ("success", success))
            for a in group
        ]
        record["verdicts"] = verdicts
        look = {"at": now, "phase": state.phase, "verdicts": verdicts}
        try:
            await self._redis.xadd(
                self._keys.rollout_verdicts(record["id"]),
                {"look": json.dumps(look)},
                maxlen=VERDICTS_MAX,
                approximate=True,
            )
        except RedisError as exc:
            log.warning("rollout %s: verdicts not recorded: %s", record["id"], exc)

    @staticmethod
    def _needed(plan: CanaryPlan, metric: str, threshold: Threshold) -> int:
        floor = (
            MIN_RATINGS if metric in ("hallucination_rate", "user_satisfaction") else MIN_REQUESTS
        )
        c = plan.comparison
        return min_sample(metric, threshold, c.confidence, c.min_effect, floor)

    async def _latency_edge(self, plan: CanaryPlan) -> int | None:
        """The bucket holding the baseline's p95 over the last 5 minutes (None if too little)."""
        _, _, merged = await self._windows.read(plan.route, 300)
        baseline = accumulate.arm(merged, plan.baseline)
        if baseline.requests < MIN_REQUESTS:
            return None
        return percentile_index(baseline.latency, 0.95)

    def _compare(
        self,
        plan: CanaryPlan,
        record: dict[str, Any],
        candidate: TrackWindow,
        baseline: TrackWindow,
        name: str,
    ) -> Assessment:
        """Feed one sequential test the counts that arrived since its last look."""
        edge = record["latency_edge"]
        slot = record["tests"][name]
        c_n, c_e = _COUNTS[name](candidate, edge)
        b_n, b_e = _COUNTS[name](baseline, edge)
        totals = [c_n, c_e, b_n, b_e]
        delta = [max(0, total - was) for total, was in zip(totals, slot["consumed"], strict=True)]
        test = RateTest(**slot["test"])
        test.pass_alpha = 1 - plan.comparison.confidence
        test.add(Interval(delta[0], delta[1], delta[2], delta[3]))
        slot["test"], slot["consumed"] = asdict(test), totals
        minimum = _MINIMUM.get(name, MIN_RATINGS)
        verdict = {"fail": Verdict.FAIL, "pass": Verdict.PASS}.get(
            test.verdict(minimum), Verdict.INCONCLUSIVE
        )
        evidence = test.fail_evidence()
        label = name.replace("_", " ")
        return Assessment(
            f"{name}_vs_baseline",
            verdict,
            evidence,
            f"evidence >= {1 / test.alpha:g}",
            test.candidate_requests,
            f"{label} vs baseline: {test.candidate_events}/{test.candidate_requests} against "
            f"{test.baseline_events}/{test.baseline_requests} (evidence {evidence:.3g})",
        )

    async def _ab_tick(
        self, plan: ABTestPlan, record: dict[str, Any], state: State, now: float
    ) -> tuple[State, list[Action]]:
        if not await self._acked(state):
            return state, []
        arms = list(plan.split)
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
        try:
            _, _, merged = await self._windows.read(plan.route, settings.after)
            window: TrackWindow | None = accumulate.arm(merged, plan.candidate.track)
        except (RedisError, OSError):
            window = None
        for metric, text in criteria.items():
            threshold = parse_threshold(text, metric)
            a = assess(metric, threshold, window, self._needed(plan, metric, threshold))
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


def _fresh_tests() -> dict[str, dict[str, Any]]:
    return {
        name: {"test": asdict(RateTest(alpha=alpha)), "consumed": [0, 0, 0, 0]}
        for name, alpha in TESTS.items()
    }


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


def _waiting_for_checklist(record: Mapping[str, Any]) -> str:
    missing = [name for name, done in record["checklist"]["required"].items() if done is None]
    if not missing:
        return ""
    return f"required checklist items: {', '.join(missing)} (splitgate rollout check {record['id']} ITEM)"


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


def _waiting_for(record: Mapping[str, Any], state: State, now: float) -> str:
    """What the rollout waits for, in words (``GET /v1/rollouts/{id}``)."""
    if record["desired"] is not None:
        return "its weights to be written"
    status = state.status
    if status is Status.PENDING:
        return _waiting_for_checklist(record) or "the control plane's next step"
    if status is Status.AWAITING_APPROVAL:
        return f"an approval (splitgate rollout approve {record['id']})"
    if status is Status.AWAITING_PROMOTION:
        return f"a promotion (splitgate rollout promote {record['id']})"
    if status is Status.PAUSED:
        return f"a resume or an abort (splitgate rollout resume|abort {record['id']})"
    if status is Status.PROMOTED and record["post_deploy"] is not None:
        post = record["post_deploy"]
        if post["status"] == "scheduled":
            return f"post-deploy checks in {max(0.0, post['due_at'] - now):.0f} s"
        return ""
    if status in FINAL:
        return ""
    if state.generation is None:
        return "its weights to be written"
    if record["strategy"] == "ab_test":
        plan = record["plan"]
        parts = []
        if plan.get("duration") is not None:
            parts.append(f"{max(0.0, state.phase_started_at + plan['duration'] - now):.0f} s left")
        if plan.get("sample_size") is not None:
            parts.append(f"{plan['sample_size']} requests on each version")
        return "the end of the test: " + " or ".join(parts)
    pending = [
        v for v in record["verdicts"] if v["verdict"] == "inconclusive" and v["role"] == "success"
    ]
    phase = record["plan"]["phases"][state.phase]
    left = None if phase["duration"] is None else state.phase_started_at + phase["duration"] - now
    if left is not None and left > 0:
        return f"the phase's observation period: {left:.0f} s left (acks from every proxy replica first)"
    if pending:
        return "enough samples: " + "; ".join(f"{v['metric']}: {v['reason']}" for v in pending)
    return "acks from every proxy replica, then the next look"
