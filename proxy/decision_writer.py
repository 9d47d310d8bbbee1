"""Writes the kept routing decisions to Redis, a batch per flush (``config.decisions``).

Called by the metrics flusher's loop once a second. Each batch goes out as one pipeline: an
``HSET`` of every entry into its time slot's hash, and an ``EXPIRE`` that keeps the slot an
hour after it ends. A batch that fails is dropped and counted (``DecisionLog.dropped``):
the log is a best effort, and holding it would hold memory while Redis is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from redis.typing import EncodableT, FieldT

from config.decisions import Decision, ShadowCopy, client_field, slot_start, slot_ttl
from config.keys import Keys
from config.stickiness import bucket
from proxy.decisions import DecisionLog, Entry
from proxy.redis_client import RedisClient


class DecisionWriter:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        log: DecisionLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._log = log
        self._clock = clock
        self.written = 0

    async def flush(self) -> None:
        batch = self._log.drain()
        if not batch:
            return
        now = self._clock()
        # Entries carry the event loop's clock (free on the request path): shift to Unix time.
        offset = now - asyncio.get_running_loop().time()
        slots: dict[int, dict[FieldT, EncodableT]] = {}
        for entry in batch:
            decision = decision_of(entry, offset)
            fields = slots.setdefault(slot_start(decision.at), {})
            encoded = decision.model_dump_json()
            fields[entry[0]] = encoded
            if entry[1] is not None:
                fields[client_field(entry[1])] = encoded
        pipe = self._redis.pipeline(transaction=False)
        for start, fields in slots.items():
            key = self._keys.decisions(start)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, slot_ttl(start, now))
        try:
            await pipe.execute()
        except BaseException:
            self._log.dropped += len(batch)
            raise
        self.written += len(batch)


def decision_of(entry: Entry, offset: float) -> Decision:
    """The stored form of one kept entry (``offset``: Unix time minus the loop's clock)."""
    _, _, route, chosen, answered, flag, forced, key, generation, started, error, copy = entry
    track = answered if answered is not None else chosen
    if forced:
        rule, value = "override", None
    elif flag is not None:
        rule, value = f"flag:{flag.name}", None if key is None else bucket(flag.salt, key)
    else:
        rule, value = "weights", None if key is None else route.bucket_of(key)
    return Decision(
        route=route.name,
        track=track.name,
        version=track.version,
        chosen=chosen.name,
        rule=rule,
        bucket=value,
        generation=generation,
        at=round(started + offset, 3),
        error=error,
        shadow=None
        if copy is None
        else ShadowCopy(track=copy.route.track, version=copy.route.version, pair_id=copy.pair_id),
    )
