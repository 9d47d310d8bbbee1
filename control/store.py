"""The control plane's access to the routing document in Redis: read, compare-and-set, audit.

Every write is one Lua script: it checks that the stored generation is the one the writer
read, stores the new document and its generation, appends the audit record and publishes the
new generation, all or nothing. A writer that lost the race gets ``Stale`` and nothing changed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from config.keys import Ack, Keys, StoredDocument
from config.schema import RoutingDocument

AUDIT_MAX = 10_000

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
    def __init__(self, redis: Any, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._cas = redis.register_script(_COMPARE_AND_SET)
        self.latest: StoredDocument | None = None
        """The newest document this store has read or written: what a re-seed restores."""

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

        The new generation is ``expected + 1`` unless a higher one is given (a re-seed after
        Redis lost its data continues above the last generation the fleet has seen). With an
        ``epoch`` (automatic decisions of the leader), the write also fails with ``Fenced``
        unless that epoch is still the current one, so a paused former leader cannot
        overwrite what the new one decided. With a ``guard`` (the key of a JSON record with a
        ``version``, and that version), the write also fails with ``Superseded`` unless the
        record still has that version: a rollout's weights are written only while the record
        that decided them is current.
        """
        new_generation = max(expected + 1, generation or 0)
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
        ok, current = await self._cas(
            keys=[
                self._keys.document,
                self._keys.generation,
                self._keys.audit,
                self._keys.epoch,
                self._keys.document if guard is None else guard[0],
            ],
            args=[
                expected,
                stored.encode(),
                new_generation,
                json.dumps(record),
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

    async def audit(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` audit records, newest first."""
        entries = await self._redis.xrevrange(self._keys.audit, count=limit)
        records = []
        for entry_id, fields in entries:
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
