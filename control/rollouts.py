"""Rollouts persisted in Redis and stepped by a runner: the I/O around the pure strategies.

A rollout record (``{ns}:rollout:<id>``) holds the plan as written, the strategy's state, the
sequential tests' state, the arms' counts since the start (``control.accumulate``), the
checklist's attestations, the last verdicts and, for an A/B test, its report; so a restarted
control plane resumes the same phase with the same history. One rollout per route may be
active (``{ns}:rollout:active:<route>``).

Weight changes (and a shadow phase's mirroring, set and removed in the same document write)
go through an outbox. A decision is saved first, with the weights it wants in
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
from typing import Any, Literal

from redis.exceptions import RedisError

from config.keys import Keys
from config.plans import ABTestPlan, CanaryPlan, stored_plan
from config.records import (
    Attestation,
    Desired,
    PostDeploy,
    RolloutLook,
    RolloutRecord,
    evolve,
)
from config.records import Strategy as StoredKind
from config.redis_replies import text
from control import accumulate, edits, waiting
from control.leadership import PASS_EPOCH
from control.metric_source import MetricSource
from control.observation import Observer
from control.outbox import desired_of, handed_over, handover, mirrored
from control.redis_client import RedisClient
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
    state_of,
    with_state,
)
from control.smoke import probe
from control.store import Change, DocumentStore, Fenced, Stale, Superseded
from control.strategies import canary
from control.strategies.canary import FINAL, Status, written
from control.strategy import Decision, Strategies

log = logging.getLogger("splitgate.control.rollouts")

ACTOR = "splitgate-rollout"


__all__ = ["RolloutConflict", "Rollouts", "UnknownItem"]


class Rollouts:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        store: DocumentStore,
        windows: MetricSource,
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
        strategy: StoredKind = "canary",
        smoke_tests: list[dict[str, Any]] | None = None,
        rollback: Literal["automatic", "manual"] = "automatic",
    ) -> RolloutRecord:
        rollout_id = f"{plan.route}-{secrets.token_hex(4)}"
        if not await self._redis.set(self._keys.active_rollout(plan.route), rollout_id, nx=True):
            active = text(await self._redis.get(self._keys.active_rollout(plan.route)))
            raise RolloutConflict(f"route {plan.route!r} already has an active rollout ({active})")
        try:
            document = await self._store.read()
            assert document is not None
            route = edits.find_route(document, plan.route)
            before = {t.name: t.weight for t in route.tracks}
            record = new_record(
                rollout_id, plan, actor, strategy, smoke_tests, rollback, self._clock(), before
            )
            return await self.records.add(record)
        except BaseException:
            await self._redis.delete(self._keys.active_rollout(plan.route))
            raise

    async def get(self, rollout_id: str) -> RolloutRecord | None:
        return await self.records.get(rollout_id)

    async def verdicts(self, rollout_id: str, limit: int) -> list[RolloutLook]:
        return await self.records.verdicts(rollout_id, limit)

    # Commands and attestations, from the admin API ------------------------------------------

    async def command(
        self, rollout_id: str, name: str, actor: str = "", reason: str = ""
    ) -> RolloutRecord | None:
        """Apply ``name``; who asked and why go into the history event and the audit reason
        of the weights it writes."""
        for _ in range(5):
            try:
                return await self._command_once(rollout_id, name, actor, reason)
            except RolloutConflict:
                continue  # the runner stepped it meanwhile: apply to the fresh state
        raise RolloutConflict(f"rollout {rollout_id} keeps changing; try again")

    async def _command_once(
        self, rollout_id: str, name: str, actor: str, reason: str
    ) -> RolloutRecord | None:
        record = await self.get(rollout_id)
        if record is None:
            return None
        strategy = self._strategy(record.strategy)
        decided = strategy.command(record, state_of(record), name, self._clock())
        said = f"by {actor or 'request'}" + (f": {reason}" if reason else "")
        history = decided.state.history
        if history:  # the command's own event says who and why
            last = replace(history[-1], detail=f"{history[-1].detail} ({said})")
            decided = decided._replace(state=replace(decided.state, history=(*history[:-1], last)))
        return await self._commit(decided, f"{name} {said}")

    async def attest(
        self, rollout_id: str, item: str, actor: str, note: str
    ) -> RolloutRecord | None:
        """Record that a checklist item is done, by whom and when (``rollout check``)."""
        for _ in range(5):
            record = await self.get(rollout_id)
            if record is None:
                return None
            status = Status(record.state.status)
            if status in FINAL:
                raise canary.CommandRefused("check an item of", status)
            checklist = record.checklist
            if item in checklist.required:
                done = Attestation(by=actor, at=self._clock(), how="attested", note=note)
                checklist = evolve(checklist, required={**checklist.required, item: done})
            elif item in checklist.recommended:
                done = Attestation(by=actor, at=self._clock(), how="attested", note=note)
                checklist = evolve(checklist, recommended={**checklist.recommended, item: done})
            else:
                raise UnknownItem(
                    f"the plan's checklist has no item {item!r} "
                    f"(it has: {', '.join(checklist_items(record)) or 'none'})"
                )
            record = evolve(record, checklist=checklist, warnings=checklist_warnings(checklist))
            if status is Status.PENDING:
                waits = waiting.waiting_for_checklist(record) or "the control plane's next step"
                record = evolve(record, waiting_for=waits)
            try:
                return await self.records.save(record)
            except RolloutConflict:
                continue
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
                        record = await self.step(record)
                    if is_over(record):
                        await self.records.archive(record)
                except Fenced as exc:
                    log.warning("rollout runner: %s; this pass ends here", exc)
                    return  # another control plane leads now
                except Exception as exc:  # one broken rollout must not stop the others
                    self._report(record.id, exc)
            await self.records.prune()
        finally:
            PASS_EPOCH.reset(token)

    async def step(self, record: RolloutRecord) -> RolloutRecord:
        """One step of one rollout; the record as it was left (saved)."""
        if record.desired is not None:
            return await self._flush(record)  # an earlier decision's weights first
        strategy = self._strategy(record.strategy)
        state = state_of(record)
        now = self._clock()
        if state.status in FINAL:
            checked = await strategy.after(record, now)
            return record if checked is None else await self.records.save(checked)
        decided = Decision(record, state, [])
        if state.status is Status.PENDING:
            record, missing = await self._prep.check_items(record)
            if missing:
                return await self.records.save(evolve(record, waiting_for=missing))
            record = await self._prep.restart_counts(record, now)
            decided = await strategy.begin(record, state, now)
        elif state.status is Status.RUNNING and state.generation is not None:
            decided = await strategy.look(record, state, now)
        history = decided.state.history
        return await self._commit(decided, history[-1].detail if history else "")

    async def _commit(self, decided: Decision, reason: str) -> RolloutRecord:
        """Save the decision with the weights it wants, then write them (the outbox)."""
        record, state, actions = decided
        changes: dict[str, Any] = {}
        if actions:
            changes["desired"] = desired_of(record, actions[-1], reason)
        now = self._clock()
        if state.status is Status.PROMOTED and record.post_deploy is None:
            plan = CanaryPlan.model_validate(stored_plan(record.plan))
            # A record from before ``after_promotion`` keeps the promotion it was started with.
            if record.plan.get("after_promotion", "candidate") == "baseline":
                desired = handover(plan)
                changes["desired"] = desired
                state = state.note(now, "baseline_updated", desired.reason)
            after = plan.post_deploy.after
            try:
                track = f"@{plan.candidate.version}"  # on either track, whatever the handover
                counts = await accumulate.start(self._windows, plan.route, [track], now)
            except (RedisError, OSError):
                counts = None  # judged from the windows since ``now`` instead
            changes["post_deploy"] = PostDeploy(
                status="scheduled", due_at=now + after, counts=counts
            )
        record = with_state(record, state, **changes)
        record = evolve(record, waiting_for=waiting.waiting_for(record, state, now))
        record = await self.records.save(record)
        if record.desired is not None:
            try:
                return await self._flush(record)
            except (RolloutConflict, Fenced, RedisError, OSError) as exc:
                # The decision is saved: the runner's next step writes its weights.
                log.warning("rollout %s: weights left to the next step: %s", record.id, exc)
        return record

    async def _flush(self, record: RolloutRecord) -> RolloutRecord:
        """Write the weights the saved record wants, unless a newer version overtook it."""
        desired = record.desired
        assert desired is not None
        for _ in range(3):
            document = await self._store.read()
            assert document is not None
            route = edits.find_route(document, record.route)
            present = {t.name for t in route.tracks}
            weights = {name: w for name, w in desired.weights.items() if name in present}
            if record.strategy == "ab_test":
                weights = {name: weights.get(name, 0.0) for name in present}
            try:
                new = handed_over(document, record.route, desired.track)
                new = edits.set_weights(new, record.route, weights)
                new = mirrored(new, record.route, desired)
            except edits.EditError as exc:
                return await self._unwritable(record, weights, exc)
            try:
                stored = await self._store.write(
                    new,
                    document.generation,
                    Change(ACTOR, desired.reason, "set_weights", f"routes/{record.route}/weights"),
                    epoch=PASS_EPOCH.get(),
                    guard=(self._keys.rollout(record.id), record.version),
                )
            except Stale:
                continue
            except Superseded:
                return record  # a newer version of the record decides (and writes) now
            state = state_of(record)
            if state.status not in FINAL:
                state = written(state, stored.generation)
                record = with_state(record, state)
                record = await self._observer.start_counting(
                    record, stored.generation, self._clock()
                )
            record = evolve(record, desired=None)
            record = evolve(record, waiting_for=waiting.waiting_for(record, state, self._clock()))
            return await self.records.save(record)
        raise RolloutConflict(f"rollout {record.id}: the routing document keeps changing")

    async def _unwritable(
        self, record: RolloutRecord, weights: dict[str, float], exc: edits.EditError
    ) -> RolloutRecord:
        """The route changed under the rollout (a track removed or given weight by hand): end
        it with the reason rather than leave it waiting for weights."""
        log.error("rollout %s: cannot set weights %s: %s", record.id, weights, exc)
        await self._stop_mirroring(record)
        state = state_of(record)
        why = f"the weights cannot be written: {exc}"
        if state.status not in FINAL:
            state = replace(state, status=Status.ABORTED, generation=None)
            state = state.note(self._clock(), "aborted", why)
        else:
            state = state.note(self._clock(), "error", why)
        record = with_state(record, state, desired=None, weights_error=str(exc), waiting_for="")
        return await self.records.save(record)

    async def _stop_mirroring(self, record: RolloutRecord) -> None:
        """A rollout that ends without its weights leaves no mirroring to its candidate
        behind (a shadow phase's): the route's ``shadow`` goes in a write of its own."""
        plan = record.plan
        if record.strategy == "ab_test" or not plan["phases"][0].get("shadow"):
            return
        end = Desired(weights={}, reason="", end_shadow=plan["candidate"]["track"])
        change = Change(ACTOR, "the rollout ended", "set_shadow", f"routes/{record.route}/shadow")
        for _ in range(3):
            document = await self._store.read()
            assert document is not None
            try:
                new = mirrored(document, record.route, end)
            except edits.EditError:
                return  # the route is gone, and its mirroring with it
            if new is document:
                return
            try:
                await self._store.write(new, document.generation, change, epoch=PASS_EPOCH.get())
            except Stale:
                continue
            return


def _log_failure(rollout_id: str, exc: BaseException) -> None:
    log.error("rollout %s: step failed", rollout_id, exc_info=exc)
