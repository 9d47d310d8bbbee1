"""The guardian: Redis always holds a routing document, and the one the fleet should apply.

Every ``interval_s`` (1 s) it looks once and repairs what Redis lost:

- **empty** (restarted without persistence, flushed): seed it from the newest document this
  process has read or written, never from zero weights, or from the config file when it has
  seen none; at a generation above any the fleet has applied, so every proxy accepts it;
- **behind** (a failover promoted a replica that missed the last writes): the stored
  generation is below the newest document this process has read or written: write that
  document back above every ack (``DocumentStore.restore``), audited as
  ``splitgate-guardian`` "re-applied generation N lost by a Redis failover";
- **astray** (replicas ack a document Redis does not hold, which another control plane wrote
  and this one never saw): write the stored document again above every ack, so that every
  replica routes by what Redis and the admin API show (``DocumentStore.realign``).
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from config.keys import StoredDocument
from config.schema import RoutingDocument
from control.store import Change, DocumentStore, Stale

log = logging.getLogger("splitgate.control.guardian")

SEEDER = "splitgate-control"


class Guardian:
    def __init__(self, store: DocumentStore, seed: RoutingDocument, interval_s: float = 1.0):
        self.store = store
        self._seed = seed
        self._interval_s = interval_s

    async def check(self) -> StoredDocument:
        """One look: seed, restore or realign as needed; the document Redis holds after it."""
        stored = await self.ensure_seeded()
        restored = await self.store.restore()
        if restored is not None:
            return restored
        realigned = await self.store.realign(stored)
        return stored if realigned is None else realigned

    async def ensure_seeded(self) -> StoredDocument:
        """Return the stored document, writing one first if Redis holds none."""
        stored = await self.store.read()
        if stored is not None:
            return stored
        acked = max((a.generation for a in (await self.store.acks()).values()), default=0)
        last_known = self.store.latest
        if last_known is not None:
            source, document = "last known document", last_known.routing()
            floor = max(last_known.generation, acked) + 1
        else:
            source, document, floor = "config file", self._seed, acked + 1
        try:
            stored = await self.store.write(
                document,
                0,
                Change(
                    SEEDER,
                    f"Redis held no routing document: seeded from the {source}",
                    "seed",
                    "routes",
                ),
                after=document.model_dump(),
                generation=floor,
            )
        except Stale:  # another control plane seeded it first
            stored = await self.store.read()
            if stored is None:
                raise RedisError("the routing document vanished while seeding") from None
        log.info(
            "seeded the routing document from the %s at generation %d", source, stored.generation
        )
        return stored

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except (RedisError, OSError) as exc:
                log.debug("guardian: Redis unavailable: %s", exc)
            except Exception:  # the guardian must outlive any one bad round
                log.exception("guardian: unexpected failure; trying again")
