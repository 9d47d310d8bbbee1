"""Reads the routing decision log the proxies write (``config.decisions``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pydantic import ValidationError

from config.decisions import Decision, lookup_slots
from config.keys import Keys
from control.redis_client import RedisClient

log = logging.getLogger("splitgate.control.decisions")


class DecisionReader:
    def __init__(
        self, redis: RedisClient, keys: Keys, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock

    async def find(self, field: str) -> Decision | None:
        """The newest logged decision under ``field``, from every slot that may still hold
        one, in one round trip; None when none is kept (not sampled, or expired)."""
        pipe = self._redis.pipeline(transaction=False)
        for start in lookup_slots(self._clock()):
            pipe.hget(self._keys.decisions(start), field)
        for raw in await pipe.execute():
            if raw is None:
                continue
            try:
                return Decision.model_validate_json(raw)
            except ValidationError as exc:
                log.warning("a logged decision does not read (%s); skipped", exc)
        return None
