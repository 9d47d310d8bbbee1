"""The control plane's access to the routing document in Redis: read, compare-and-set, audit.

Every write is one Lua script: it checks that the stored generation is the one the writer
read, stores the new document and its generation, appends the audit record and publishes the
new generation, all or nothing. A writer that lost the race gets ``Stale`` and nothing changed.

Redis replicates asynchronously, so a failover can lose acknowledged writes: the promoted
replica holds an older generation than the one the proxies already apply. Hence:

- a new generation is above the stored one, above every generation a live replica acks and
  above the newest one this store has read or written, so every proxy accepts it;
- a write that finds Redis behind the newest document this store knows first puts that
  document back (``restore``, audited as the guardian's), then fails with ``Stale`` so the
  caller redoes its edit on top of it;
- "applied" means every live replica acks this document's generation *and* digest.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster

from config import jsonsafe
from config.keys import Ack, Keys, StoredDocument
from config.redis_replies import entries
from config.schema import RoutingDocument
from control.redis_client import RedisClient

log = logging.getLogger("splitgate.control.store")

AUDIT_MAX = 10_000
GUARDIAN = "splitgate-guardian"
"""The actor of the writes that repair the document after Redis lost some of it."""

_COMPARE_AND_SET = """
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
if ARGV[7] ~= '' and tonumber(redis.call('GET', KEYS[4]) or '0') ~= tonumber(ARGV[7]) then
  return {2, tonumber(redis.call('GET', KEYS[4]) or '0')}
end
if ARGV[8] ~= '' then
  local owner = redis.call('GET', KEYS[5])
  if not owner or cjson.decode(owner)['version'] ~= tonumber(ARGV[8]) then
    return {3, 0}
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'record', ARGV[4])
redis.call('PUBLISH', ARGV[6], ARGV[3])
return {1, tonumber(ARGV[3])}
"""


class Fenced(Exception):
    """The writer's leadership epoch is over: another control plane leads now."""

    def __init__(self, current: int) -> None:
        super().__init__(f"fenced: the leadership epoch is now {current}")
        self.current = current


class Superseded(Exception):
    """The record that asked for this write has changed since: its newer version decides."""


class Stale(Exception):
    """The document changed since it was read; ``current`` is the stored generation."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the routing document is at generation {current}")
        self.current = current


@dataclass(frozen=True)
class Change:
    actor: str
    reason: str
    action: str
    target: str
    """What changed, e.g. ``routes/chat/weights``."""


class DocumentStore:
    def __init__(
        self, redis: RedisClient, keys: Keys, *, wait: tuple[int, float] = (0, 0.0)
    ) -> None:
        """``wait``: after each write, wait until that many replicas have it, at most that
        many seconds (Redis ``WAIT``); ``(0, 0.0)`` does not wait. Not on a Cluster, whose
        pipelines refuse scripts (``config.redis_url`` refuses ``wait_replicas`` there)."""
        if wait[0] > 0 and isinstance(redis, RedisCluster):
            raise ValueError("waiting for replicas is not available on a Redis Cluster")
        self._redis = redis
        self._keys = keys
        self._cas = redis.register_script(_COMPARE_AND_SET)
        self._wait = wait
        self.latest: StoredDocument | None = None
        """The newest document this store has read or written: what a re-seed restores."""
        self.unreplicated = 0
        """Writes that fewer replicas than ``wait`` asked for confirmed in time."""

    async def read(self) -> StoredDocument | None:
        raw = await self._redis.get(self._keys.document)
        if raw is None:
            return None
        document = StoredDocument.decode(raw)
        self._remember(document)
        return document

    def _remember(self, document: StoredDocument) -> None:
        if self.latest is None or document.generation >= self.latest.generation:
            self.latest = document

    async def generation(self) -> int:
        raw = await self._redis.get(self._keys.generation)
        return 0 if raw is None else int(raw)

    async def write(
        self,
        document: RoutingDocument,
        expected: int,
        change: Change,
        before: Any = None,
        after: Any = None,
        generation: int | None = None,
        epoch: int | None = None,
        guard: tuple[str, int] | None = None,
    ) -> StoredDocument:
        """Store ``document`` if the stored generation is still ``expected``; else ``Stale``.

        The new generation is above ``expected``, above every live replica's ack and above
        the newest document this store has seen, or ``generation`` if that is higher still (a
        re-seed after Redis lost its data continues above the last generation the fleet has
        seen). When ``expected`` is below the newest document this store has seen and Redis
        holds an older generation than that document, a failover lost it: it is put back
        first (``restore``) and the write fails with ``Stale``, to be redone on top. With an
        ``epoch`` (automatic decisions of the leader), the write also fails with ``Fenced``
        unless that epoch is still the current one, so a paused former leader cannot
        overwrite what the new one decided. With a ``guard`` (the key of a JSON record with a
        ``version``, and that version), the write also fails with ``Superseded`` unless the
        record still has that version: a rollout's weights are written only while the record
        that decided them is current.
        """
        if self.latest is not None and expected < self.latest.generation:
            restored = await self.restore()
            if restored is not None:
                raise Stale(restored.generation)
        return await self._write(
            document, expected, change, before, after, generation, epoch, guard
        )

    async def _write(
        self,
        document: RoutingDocument,
        expected: int,
        change: Change,
        before: Any = None,
        after: Any = None,
        generation: int | None = None,
        epoch: int | None = None,
        guard: tuple[str, int] | None = None,
    ) -> StoredDocument:
        acked = max((a.generation for a in (await self.acks()).values()), default=0)
        known = 0 if self.latest is None else self.latest.generation
        new_generation = max(expected, acked, known) + 1
        new_generation = max(new_generation, generation or 0)
        stored = StoredDocument.stamp(document, new_generation, time.time(), change.actor)
        record = {
            "time": stored.written_at,
            "actor": change.actor,
            "reason": change.reason,
            "action": change.action,
            "target": change.target,
            "generation": new_generation,
            "before": before,
            "after": after,
        }
        record["epoch"] = epoch
        ok, current = await self._compare_and_set(
            [
                self._keys.document,
                self._keys.generation,
                self._keys.audit,
                self._keys.epoch,
                self._keys.document if guard is None else guard[0],
            ],
            [
                expected,
                stored.encode(),
                new_generation,
                jsonsafe.dumps(record),
                AUDIT_MAX,
                self._keys.changes,
                "" if epoch is None else epoch,
                "" if guard is None else guard[1],
            ],
        )
        if ok == 3:
            raise Superseded(f"{guard[0] if guard else ''} changed since it decided this write")
        if ok == 2:
            raise Fenced(int(current))
        if not ok:
            raise Stale(int(current))
        self._remember(stored)
        return stored

    async def _compare_and_set(self, keys: list[str], args: list[Any]) -> tuple[int, int]:
        """Run the script; with ``wait``, then ``WAIT`` on the same connection (a pipeline)."""
        replicas, timeout_s = self._wait
        if replicas <= 0 or isinstance(self._redis, RedisCluster):  # a Cluster never waits
            ok, current = await self._cas(keys=keys, args=args)
            return int(ok), int(current)
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._cas(keys=keys, args=args, client=pipe)
            pipe.wait(replicas, max(1, int(timeout_s * 1000)))
            (ok, current), confirmed = await pipe.execute()
        if ok == 1 and int(confirmed) < replicas:
            self.unreplicated += 1
            log.warning(
                "generation %s is stored, but only %d of %d replicas confirmed it within %g s: "
                "a failover now could lose it (the guardian would then re-apply it)",
                current,
                int(confirmed),
                replicas,
                timeout_s,
            )
        return int(ok), int(current)

    async def restore(self) -> StoredDocument | None:
        """If Redis holds an older generation than the newest document this store has read or
        written (a failover lost it), write that document back above every ack; return it.

        Audited as the guardian's, with the generation that was lost. ``None`` when nothing
        was lost (or another writer got there first)."""
        lost = self.latest
        if lost is None:
            return None
        stored = await self.read()
        if stored is None or stored.generation >= lost.generation:
            return None  # empty: the guardian seeds it; not behind: nothing lost
        if any(a.generation > lost.generation for a in (await self.acks()).values()):
            # The fleet applied a newer document than this store knows (another control plane
            # wrote it): re-applying ours would roll them back. The guardian's ``realign``
            # republishes what Redis holds above their acks instead.
            return None
        change = Change(
            GUARDIAN,
            f"re-applied generation {lost.generation} lost by a Redis failover "
            f"(Redis held generation {stored.generation}, written by {stored.written_by or '?'})",
            "reapply",
            "routes",
        )
        try:
            restored = await self._write(
                lost.routing(),
                stored.generation,
                change,
                before={"generation": stored.generation, "digest": stored.digest},
                after={"generation": lost.generation, "digest": lost.digest},
            )
        except Stale:
            return None
        log.warning(
            "Redis held generation %d below generation %d this control plane had seen: "
            "re-applied it as generation %d",
            stored.generation,
            lost.generation,
            restored.generation,
        )
        return restored

    async def realign(self, stored: StoredDocument) -> StoredDocument | None:
        """If live replicas route by a document Redis does not hold (a higher generation, or
        the same one with another digest: lost in a failover, its content unknown here),
        write ``stored`` again above every ack so they all apply it; return what was written.
        """
        acks = await self.acks()
        astray = sorted(
            name
            for name, ack in acks.items()
            if ack.generation > stored.generation
            or (ack.generation == stored.generation and not ack.routes_by(stored))
        )
        if not astray:
            return None
        highest = max(acks[name].generation for name in astray)
        shown = ", ".join(astray[:5]) + (f" and {len(astray) - 5} more" if len(astray) > 5 else "")
        change = Change(
            GUARDIAN,
            f"replicas ({shown}) apply generation {highest}, which Redis does not hold "
            f"(lost by a Redis failover); republished generation {stored.generation} above it",
            "republish",
            "routes",
        )
        try:
            written = await self._write(
                stored.routing(),
                stored.generation,
                change,
                before={"generation": highest, "replicas": astray},
                after={"generation": stored.generation, "digest": stored.digest},
            )
        except Stale:
            return None
        log.warning("%s; now generation %d", change.reason, written.generation)
        return written

    async def converged(self, generation: int, acks: Mapping[str, Ack] | None = None) -> bool:
        """Whether every live replica routes by the stored document, which is ``generation``
        or newer (not merely by some document with that generation number)."""
        stored = await self.read()
        if stored is None or stored.generation < generation:
            return False
        return await self.applied(stored, acks)

    async def applied(self, stored: StoredDocument, acks: Mapping[str, Ack] | None = None) -> bool:
        """Whether every live replica (at least one) routes by exactly ``stored``, or by the
        newer document Redis holds now (written since ``stored`` was read)."""
        acks = await self.acks() if acks is None else acks
        if not acks:
            return False
        newer: StoredDocument | None = None
        for ack in acks.values():
            if ack.routes_by(stored):
                continue
            if ack.generation <= stored.generation:
                return False
            newer = newer or await self.read()
            if newer is None or newer.generation <= stored.generation or not ack.routes_by(newer):
                return False
        return True

    async def audit(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` audit records, newest first."""
        records = []
        for entry_id, fields in entries(await self._redis.xrevrange(self._keys.audit, count=limit)):
            record = json.loads(fields["record"])
            record["id"] = entry_id
            records.append(record)
        return records

    async def acks(self) -> dict[str, Ack]:
        """Every live proxy replica's applied generation (replicas whose ack has not expired)."""
        keys = [key async for key in self._redis.scan_iter(match=self._keys.ack_pattern, count=500)]
        if not keys:
            return {}
        values = await self._redis.mget(keys)
        acks = {}
        for key, raw in zip(keys, values, strict=True):
            if raw is not None:
                acks[self._keys.instance_of(key)] = Ack.model_validate_json(raw)
        return acks
