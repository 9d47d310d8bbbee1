"""Follows the routing document in Redis and swaps in a new routing table on every change.

Pub/sub delivers each message at most once, and not at all while disconnected, so the
watcher also polls the generation every ``poll_s`` seconds; a message only makes it look
sooner. It subscribes before its first read, so no change can slip between the two. Where
pub/sub is not available (some Redis proxies), ``pubsub=False`` polls alone.

Fail static: any Redis failure leaves the current table in place, however old. A document
that does not validate is refused (counted, logged) and the last good one stays. A missing
document (Redis restarted empty) is not "zero weights": the table stays, and the control
plane re-seeds Redis.

The applied generation never goes back. A stored generation below it means Redis lost writes
(a failover promoted a replica that missed them): the table stays, the watcher warns once per
such generation and counts it (``behind``); the control plane repairs Redis by writing above
every ack. A document of the same generation is not fetched again (the ack's digest lets the
control plane see a replica that applies a different one, and republish above it).

After every successful look the watcher writes its ack, ``instance → generation, digest``
with a TTL, so the control plane can tell when every live replica has applied a change. The
same write carries each upstream's passive health (ejected, failures in a row), for the
dashboard: no Redis write of its own, and nothing on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from pydantic import ValidationError
from redis.exceptions import RedisError

from config.keys import Ack, Keys, StoredDocument, UpstreamHealth
from config.redis_replies import text
from proxy.redis_client import RedisClient

log = logging.getLogger("splitgate.proxy.watcher")

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class RoutingWatcher:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        instance: str,
        apply: Callable[[StoredDocument], None],
        applied: Callable[[], int],
        *,
        poll_s: float = 1.0,
        pubsub: bool = True,
        ack_ttl_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        health: Callable[[], Mapping[str, UpstreamHealth]] = dict,
    ) -> None:
        """``health``: each upstream's passive health, reported in the ack."""
        self._redis = redis
        self._keys = keys
        self._instance = instance
        self._apply = apply
        self._applied = applied
        self._poll_s = poll_s
        self._pubsub = pubsub
        self._ack_ttl_ms = int(ack_ttl_s * 1000)
        self._clock = clock
        self._health = health
        self.connected = False
        self.document_missing = False
        self.rejected = 0
        self.behind = 0
        """Looks that found Redis at a lower generation than the one applied (writes lost)."""
        self.store_generation: int | None = None
        """The generation Redis held at the last look (None: none, or not a number)."""
        self.digest = ""
        """``StoredDocument.digest`` of the document applied ("" before the first)."""
        self._warned_behind: int | None = None
        self.last_sync: float | None = None
        """Clock time of the last successful look at Redis; None before the first."""

    def stale_seconds(self) -> float | None:
        """How long the routing has gone unconfirmed by Redis (None: never confirmed)."""
        return None if self.last_sync is None else self._clock() - self.last_sync

    async def run(self) -> None:
        """Follow Redis until cancelled; reconnect with backoff whenever it fails."""
        backoff = 0.05
        while True:
            try:
                await self._follow()
            except _FAILURES as exc:
                if self.connected:
                    log.warning(
                        "lost Redis (%s); routing stays at generation %d", exc, self._applied()
                    )
                self.connected = False
            except Exception:  # the watcher must outlive any one bad round; the table stays
                log.exception("routing watcher: unexpected failure; reconnecting")
                self.connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._poll_s)

    async def _follow(self) -> None:
        if not self._pubsub:
            await self._synced()
            while True:
                await asyncio.sleep(self._poll_s)
                await self.sync()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            # Subscribe before the first read so no change is lost in between.
            await pubsub.subscribe(self._keys.changes)
            await self._synced()
            while True:
                await pubsub.get_message(timeout=self._poll_s)
                await self.sync()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated

    async def _synced(self) -> None:
        await self.sync()
        if not self.connected:
            log.info("following Redis at generation %d", self._applied())
        self.connected = True

    async def sync(self) -> None:
        """Look once: apply a newer valid document, then ack what is applied."""
        raw_generation = text(await self._redis.get(self._keys.generation))
        self.document_missing = raw_generation is None
        generation = _generation(raw_generation)
        if generation is None and raw_generation is not None:
            self.rejected += 1
            log.warning(
                "refused a routing generation that is not a number: %r", raw_generation[:40]
            )
        elif generation is not None and generation > self._applied():
            raw = text(await self._redis.get(self._keys.document))
            if raw is not None:
                self._consider(raw)
        elif generation is not None and generation < self._applied():
            self._behind(generation)
        self.store_generation = generation
        ack = Ack(
            generation=self._applied(),
            applied_at=time.time(),
            digest=self.digest,
            upstreams=dict(self._health()),
        )
        await self._redis.set(
            self._keys.ack(self._instance), ack.model_dump_json(), px=self._ack_ttl_ms
        )
        self.last_sync = self._clock()

    def _consider(self, raw: str) -> None:
        try:
            document = StoredDocument.decode(raw)
        except ValidationError as exc:
            self.rejected += 1
            log.warning(
                "refused an invalid routing document; keeping generation %d: %s",
                self._applied(),
                exc,
            )
            return
        if document.generation > self._applied():
            self._apply(document)
            self.digest = document.digest
            self._warned_behind = None
            log.info("routing generation %d applied", document.generation)

    def _behind(self, generation: int) -> None:
        self.behind += 1
        if self._warned_behind != generation:
            self._warned_behind = generation
            log.warning(
                "Redis holds routing generation %d, below the applied %d: it lost writes "
                "(a failover?); keeping generation %d until the control plane writes above it",
                generation,
                self._applied(),
                self._applied(),
            )


def _generation(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit():
        return None
    return int(raw)
