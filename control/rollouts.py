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
track (weight 0), check it is up and run the smoke tests (``control.rollout_prep``); then judge
the phase from the fleet's metric windows once every live replica acked its weights
(``control.observation``). A promoted rollout gets its post-deploy checks once their
observation period is over (``control.post_deploy``). Records are kept by
``control.rollout_store``; the outbox's entries are built by ``control.outbox``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from redis.exceptions import RedisError

from config.keys import Keys
from config.plans import ABTestPlan, CanaryPlan, stored_plan
from control import accumulate, edits, waiting
from control.leadership import PASS_EPOCH
from control.observation import Action, Observer
from control.outbox import handed_over, handover, weights_of
from control.rollout_prep import (
    Preparation,
    Probe,
    checklist_items,
    checklist_warnings,
    new_record,
)
from control.rollout_store import (
    RETENTION_S,
    Report,
    RolloutConflict,
    RolloutStore,
    UnknownItem,
    is_over,
    needs_step,
    state_from_dict,
    state_to_dict,
)
from control.smoke import probe
from control.store import Change, DocumentStore, Fenced, Stale, Superseded
from control.strategies import canary
from control.strategies.canary import (
    FINAL,
    State,
    Status,
    written,
)
from control.strategy import Strategies
from control.windows import WindowReader

log = logging.getLogger("splitgate.control.rollouts")

ACTOR = "splitgate-rollout"


__all__ = ["RolloutConflict", "Rollouts", "UnknownItem"]


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
        report: Report | None = None,
        retention_s: float = RETENTION_S,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._windows = windows
        self._clock = clock
        self._epoch = epoch
        self._probe = probe
        self._report: Report = report or _log_failure
        self.records = RolloutStore(redis, keys, clock, retention_s)
        self._prep = Preparation(store, clock, probe)
        self._observer = Observer(store, windows, self.records)
        self._strategy = Strategies(self._prep, self._observer, windows)

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
        before = {t.name: t.weight for t in route.tracks}
        record = new_record(rollout_id, plan, actor, strategy, smoke_tests, rollback, now, before)
        await self.records.add(record)
        return record

    async def get(self, rollout_id: str) -> dict[str, Any] | None:
        return await self.records.get(rollout_id)

    async def verdicts(self, rollout_id: str, limit: int) -> list[dict[str, Any]]:
        return await self.records.verdicts(rollout_id, limit)

    async def _save(self, record: dict[str, Any]) -> None:
        await self.records.save(record)

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
        state = state_from_dict(record["state"])
        strategy = self._strategy(record["strategy"])
        state, actions = strategy.command(record, state, name, self._clock())
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
                    f"(it has: {', '.join(checklist_items(record)) or 'none'})"
                )
            record["checklist"][group][item] = {
                "by": actor,
                "at": self._clock(),
                "how": "attested",
                "note": note,
            }
            record["warnings"] = checklist_warnings(record)
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
        """One pass of the runner (the leader's): step every active rollout that needs it,
        archive those that are over, delete archived ones past their retention.

        The pass carries the fencing epoch it started with: if this process stops leading
        meanwhile, its saves and weight writes fail with ``Fenced``."""
        epoch = self._epoch()
        token = PASS_EPOCH.set(epoch)
        try:
            for record in await self.records.active(self._report):
                try:
                    if needs_step(record, self._clock()):
                        await self.step(record)
                    if is_over(record):
                        await self.records.archive(record)
                except Fenced as exc:
                    log.warning("rollout runner: %s; this pass ends here", exc)
                    return  # another control plane leads now
                except Exception as exc:  # one broken rollout must not stop the others
                    self._report(record["id"], exc)
            await self.records.prune()
        finally:
            PASS_EPOCH.reset(token)

    async def step(self, record: dict[str, Any]) -> None:
        if record["desired"] is not None:
            await self._flush(record)  # an earlier decision's weights first
            return
        strategy = self._strategy(record["strategy"])
        state = state_from_dict(record["state"])
        now = self._clock()
        if state.status in FINAL:
            if await strategy.after(record, now):
                await self._save(record)
            return
        actions: list[Action] = []
        if state.status is Status.PENDING:
            missing = await self._prep.check_items(record)
            if missing:
                record["waiting_for"] = missing
                await self._save(record)
                return
            await self._prep.restart_counts(record, now)
            state, actions = await strategy.begin(record, state, now)
        elif state.status is Status.RUNNING and state.generation is not None:
            state, actions = await strategy.look(record, state, now)
        reason = state.history[-1].detail if state.history else ""
        await self._commit(record, state, actions, reason)

    async def _commit(
        self, record: dict[str, Any], state: State, actions: list[Action], reason: str
    ) -> None:
        """Save the decision with the weights it wants, then write them (the outbox)."""
        record["state"] = state_to_dict(state)
        if actions:
            record["desired"] = {"weights": weights_of(record, actions[-1]), "reason": reason}
        now = self._clock()
        if state.status is Status.PROMOTED and record["post_deploy"] is None:
            plan = CanaryPlan.model_validate(stored_plan(record["plan"]))
            # A record from before ``after_promotion`` keeps the promotion it was started with.
            if record["plan"].get("after_promotion", "candidate") == "baseline":
                record["desired"] = handover(plan)
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
                new = handed_over(document, record["route"], desired.get("track"))
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
                    epoch=PASS_EPOCH.get(),
                    guard=(self._keys.rollout(record["id"]), record["version"]),
                )
            except Stale:
                continue
            except Superseded:
                return  # a newer version of the record decides (and writes) now
            state = state_from_dict(record["state"])
            if state.status not in FINAL:
                record["state"] = state_to_dict(written(state, stored.generation))
                await self._observer.start_counting(record, stored.generation, self._clock())
            record["desired"] = None
            record["waiting_for"] = waiting.waiting_for(
                record, state_from_dict(record["state"]), self._clock()
            )
            await self._save(record)
            return
        raise RolloutConflict(f"rollout {record['id']}: the routing document keeps changing")


def _log_failure(rollout_id: str, exc: BaseException) -> None:
    log.error("rollout %s: step failed", rollout_id, exc_info=exc)
