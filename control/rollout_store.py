"""Where rollout records live in Redis: saved by compare-and-set, fenced, indexed, archived.

- ``{ns}:rollout:<id>``: the record, JSON with a ``version``. Every save is one script: the
  version must be the one read, the leader's fencing epoch (for the runner's own decisions)
  must still be current, and the state's new events are appended to ``{ns}:events`` with it.
- ``{ns}:rollouts``: the index of active rollouts, the only ones the runner reads each pass
  (with one ``MGET``). A rollout that is over (a final status, its last weights written, its
  post-deploy checks done) moves to ``{ns}:rollouts:archive``, a sorted set by the time it
  ended, and is deleted with its verdicts after the retention period.
- ``{ns}:rollouts:quarantine``: records that do not read (hand-edited, truncated), with the
  reason. They leave the index, so the runner does not trip on them every pass; the record
  itself is left as it was, to be looked at. ``GET /v1/rollouts`` lists them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from config import jsonsafe
from config.keys import Keys
from config.plans import ABTestPlan, CanaryPlan, stored_plan
from config.records import Event as StoredEvent
from config.records import QuarantinedRollout, RolloutLook, RolloutRecord, evolve
from config.redis_replies import entries, text
from control.redis_client import RedisClient
from control.strategies.canary import FINAL, Event, State, Status
from control.versioned import VersionChanged, VersionedStore

log = logging.getLogger("splitgate.control.rollouts")

EVENTS_MAX = 10_000
VERDICTS_MAX = 5_000
RETENTION_S = 30 * 86400.0
"""How long a finished rollout stays readable (``SPLITGATE_ROLLOUT_RETENTION``)."""
PRUNE_MAX = 100
"""Archived rollouts deleted per pass at most, so that one pass stays short."""

Report = Callable[[str, BaseException], None]


class RolloutConflict(Exception):
    """Another rollout is active on the route, or the record changed meanwhile (HTTP 409)."""


class Unreadable(ValueError):
    """The stored record does not read (HTTP 409): it is, or is about to be, quarantined."""


class UnknownItem(Exception):
    """The rollout's checklist has no such item (HTTP 404)."""


def state_of(record: RolloutRecord) -> State:
    """The strategy's state of a record (``control.strategies``' pure transitions use it)."""
    s = record.state
    return State(
        status=Status(s.status),
        phase=s.phase,
        phase_started_at=s.phase_started_at,
        generation=s.generation,
        error_streak=s.error_streak,
        errors=s.errors,
        failure_streak=s.failure_streak,
        failures=s.failures,
        paused_from=Status(s.paused_from) if s.paused_from else None,
        history=tuple(Event(e.at, e.kind, e.detail) for e in s.history),
    )


def with_state(record: RolloutRecord, state: State, **changes: Any) -> RolloutRecord:
    """``record`` holding ``state`` (and ``changes``)."""
    stored = asdict(state)
    stored["status"] = state.status.value
    stored["paused_from"] = state.paused_from.value if state.paused_from else None
    return evolve(record, state=stored, **changes)


def plan_of(record: RolloutRecord) -> CanaryPlan | ABTestPlan:
    plan = stored_plan(record.plan)
    if record.strategy == "ab_test":
        return ABTestPlan.model_validate(plan)
    return CanaryPlan.model_validate(plan)


def needs_step(record: RolloutRecord, now: float) -> bool:
    if record.desired is not None:
        return True
    if Status(record.state.status) not in FINAL:
        return True
    post = record.post_deploy
    return post is not None and post.status == "scheduled" and now >= post.due_at


def is_over(record: RolloutRecord) -> bool:
    """Nothing will ever step it again: a final status, no weights to write, no checks due."""
    if record.desired is not None or Status(record.state.status) not in FINAL:
        return False
    post = record.post_deploy
    return post is None or post.status != "scheduled"


def read_record(rollout_id: str, raw: str | bytes) -> RolloutRecord:
    """The record, checked as the runner will use it: against ``config.records`` and its
    plan against the strategy's model. ValueError with the reason if it does not read."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        record = RolloutRecord.model_validate(data)
        if record.id != rollout_id:
            raise ValueError(f"its id is {record.id!r}, not {rollout_id!r}")
        plan_of(record)
    except ValueError as exc:  # pydantic's ValidationError and json's errors are ValueErrors
        raise ValueError(_short(exc)) from None
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {_short(exc)}") from None
    return record


def _strs(replies: Iterable[Any]) -> list[str]:
    """Members and ids as ``str`` (``config.redis_replies.text``)."""
    return [text(reply) for reply in replies]


def _scored(replies: Iterable[Any]) -> list[tuple[str, float]]:
    """``ZRANGE … WITHSCORES`` as (member, score) pairs."""
    return [(text(member), float(score)) for member, score in replies]


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def _ended_at(record: RolloutRecord, now: float) -> float:
    history = record.state.history
    return history[-1].at if history else now


class RolloutStore:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        retention_s: float = RETENTION_S,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock
        self.retention_s = retention_s
        self._versions = VersionedStore[RolloutRecord](redis, keys, RolloutRecord.stored)

    # One record -----------------------------------------------------------------------------

    async def get(self, rollout_id: str) -> RolloutRecord | None:
        """The record, or None if there is none; ``Unreadable`` if it does not read."""
        raw = await self._redis.get(self._keys.rollout(rollout_id))
        if raw is None:
            return None
        try:
            return read_record(rollout_id, raw)
        except ValueError as exc:
            raise Unreadable(
                f"rollout {rollout_id}: the stored record does not read: {exc}"
            ) from None

    async def exists(self, rollout_id: str) -> bool:
        return bool(await self._redis.exists(self._keys.rollout(rollout_id)))

    async def add(self, record: RolloutRecord) -> RolloutRecord:
        """Put a new record in the index of active rollouts and save it. In that order: if the
        save fails, the next pass drops an id whose record is missing; the other way round
        a record could be saved that no pass ever reads."""
        await self._redis.sadd(self._keys.rollouts, record.id)
        return await self.save(record)

    async def save(self, record: RolloutRecord) -> RolloutRecord:
        """Compare-and-set on the record's version: a concurrent change makes this one fail
        (``RolloutConflict``), and so does a fencing epoch that is no longer current
        (``Fenced``). The state's events since the last save are appended with it. Returns
        the record as stored (its new version)."""
        history = record.state.history
        events = [self._event(record, e) for e in history[record.emitted :]]
        record = record.model_copy(update={"emitted": len(history)})
        try:
            saved = await self._versions.save(
                self._keys.rollout(record.id), record, events, EVENTS_MAX
            )
        except VersionChanged:
            raise RolloutConflict(f"rollout {record.id} changed meanwhile; try again") from None
        if Status(saved.state.status) in FINAL and saved.desired is None:
            # Only this rollout's own claim is released, once its last weights are written.
            active = self._keys.active_rollout(saved.route)
            if await self._redis.get(active) == saved.id:
                await self._redis.delete(active)
        return saved

    def _event(self, record: RolloutRecord, event: StoredEvent) -> str:
        candidate = record.plan.get("candidate")
        return jsonsafe.dumps(
            {
                "rollout": record.id,
                "route": record.route,
                "strategy": record.strategy,
                "kind": event.kind,
                "detail": event.detail,
                "status": record.state.status,
                "phase": record.state.phase,
                "version": candidate.get("version") if isinstance(candidate, dict) else None,
                "at": event.at,
            }
        )

    async def verdicts(self, rollout_id: str, limit: int) -> list[RolloutLook]:
        """The newest ``limit`` looks, newest first, each with its verdicts and figures. A look
        that does not read (written by hand) is left out."""
        reply = await self._redis.xrevrange(self._keys.rollout_verdicts(rollout_id), count=limit)
        looks = []
        for entry_id, fields in entries(reply):
            try:
                looks.append(
                    RolloutLook.model_validate_json(fields["look"]).model_copy(
                        update={"id": entry_id}
                    )
                )
            except (ValueError, KeyError):
                continue
        return looks

    async def add_look(self, rollout_id: str, look: RolloutLook) -> None:
        await self._redis.xadd(
            self._keys.rollout_verdicts(rollout_id),
            {"look": jsonsafe.dumps(look.model_dump(mode="json", exclude={"id"}))},
            maxlen=VERDICTS_MAX,
            approximate=True,
        )

    # The index, the archive, the quarantine ------------------------------------------------

    async def active(self, report: Report | None = None) -> list[RolloutRecord]:
        """Every active rollout's record, by id. One that does not read is quarantined (and
        reported), one whose record is gone leaves the index: neither comes back next pass."""
        ids = sorted(_strs(await self._redis.smembers(self._keys.rollouts)))
        if not ids:
            return []
        raws = await self._redis.mget([self._keys.rollout(i) for i in ids])
        records = []
        for rollout_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                await self._redis.srem(self._keys.rollouts, rollout_id)
                continue
            try:
                records.append(read_record(rollout_id, raw))
            except ValueError as exc:
                await self.quarantine(rollout_id, str(exc))
                if report is not None:
                    report(rollout_id, exc)
        return records

    async def quarantine(self, rollout_id: str, reason: str) -> None:
        entry = jsonsafe.dumps({"reason": reason, "at": self._clock()})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.rollouts_quarantine, rollout_id, entry)
            pipe.srem(self._keys.rollouts, rollout_id)
            await pipe.execute()
        log.error(
            "rollout %s: quarantined, the stored record does not read: %s", rollout_id, reason
        )

    async def quarantined_count(self) -> int:
        return int(await self._redis.hlen(self._keys.rollouts_quarantine))

    async def quarantined(self) -> list[QuarantinedRollout]:
        stored = await self._redis.hgetall(self._keys.rollouts_quarantine)
        out = []
        for key in sorted(stored):
            rollout_id = text(key)
            try:
                entry = json.loads(stored[key])
                out.append(QuarantinedRollout.model_validate({**entry, "id": rollout_id}))
            except (ValueError, TypeError):  # not JSON, or not an object
                out.append(QuarantinedRollout(id=rollout_id, reason="(unreadable entry)", at=0.0))
        return out

    async def archive(self, record: RolloutRecord) -> None:
        """Move a rollout that is over from the index to the archive. Its route's claim goes
        too if it still names it (a save that wrote the end but failed to release it)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.rollouts_archive, {record.id: _ended_at(record, self._clock())})
            pipe.srem(self._keys.rollouts, record.id)
            await pipe.execute()
        active = self._keys.active_rollout(record.route)
        if await self._redis.get(active) == record.id:
            await self._redis.delete(active)  # no one else can claim it while it names this id

    async def prune(self) -> int:
        """Delete archived rollouts older than the retention period (at most PRUNE_MAX)."""
        cutoff = self._clock() - self.retention_s
        ids = _strs(
            await self._redis.zrangebyscore(
                self._keys.rollouts_archive, "-inf", cutoff, start=0, num=PRUNE_MAX
            )
        )
        if ids:
            async with self._redis.pipeline(transaction=True) as pipe:
                for rollout_id in ids:
                    pipe.delete(self._keys.rollout(rollout_id))
                    pipe.delete(self._keys.rollout_verdicts(rollout_id))
                pipe.zrem(self._keys.rollouts_archive, *ids)
                await pipe.execute()
        return len(ids)

    async def page(
        self, limit: int, cursor: tuple[float, str] | None
    ) -> tuple[list[RolloutRecord], tuple[float, str] | None]:
        """The first page holds every active rollout, then the archive newest first; a page
        after ``cursor`` (the last archived rollout's end time and id) only the archive.
        Returns the page and the cursor of the next one (None at the end)."""
        records: list[RolloutRecord] = []
        if cursor is None:
            active = await self._redis.smembers(self._keys.rollouts)
            records += await self._readable(sorted(_strs(active)))
        key = self._keys.rollouts_archive
        archived: list[tuple[str, float]] = []
        top: float | str = "+inf"
        if cursor is not None:
            # The rest of the rollouts that ended at the cursor's very time (ids below it),
            # then those that ended before: ZREVRANGE orders ties by id, descending.
            score, after = cursor
            ties = _strs(await self._redis.zrangebyscore(key, score, score))
            archived = [(i, score) for i in sorted(ties, reverse=True) if i < after]
            top = f"({score!r}"
        scored = await self._redis.zrevrangebyscore(
            key, top, "-inf", start=0, num=limit + 1, withscores=True
        )
        archived += _scored(scored)
        more = len(archived) > limit
        archived = archived[:limit]
        records += await self._readable([rollout_id for rollout_id, _ in archived])
        if not more or not archived:
            return records, None
        last_id, last_score = archived[-1]
        return records, (last_score, last_id)

    async def _readable(self, ids: list[str]) -> list[RolloutRecord]:
        """The records of ``ids`` that read, in order, with one MGET. One that does not read is
        left out here: the runner quarantines it on its next pass."""
        if not ids:
            return []
        raws = await self._redis.mget([self._keys.rollout(i) for i in ids])
        records = []
        for rollout_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                continue
            try:
                records.append(read_record(rollout_id, raw))
            except ValueError:
                continue
        return records
