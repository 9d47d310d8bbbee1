"""One control plane leads the automatic work (rollouts); the others stand by.

The lease is a Redis key ``<instance> <epoch>`` with a TTL, taken with ``SET NX`` and renewed
by a compare script. Taking it bumps the fencing epoch, and the leader's weight writes carry
that epoch, which the write script checks: a leader paused past its lease (GC, SIGSTOP) that
wakes up still believing it leads has its writes refused, so it cannot overwrite newer
decisions. A lease alone would not be enough for that.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from redis.exceptions import RedisError

from config.keys import Keys
from control.redis_client import RedisClient

log = logging.getLogger("splitgate.control.leadership")

PASS_EPOCH: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "splitgate_pass_epoch", default=None
)
"""The fencing epoch a leader's pass (of the rollout runner, of the flag schedules) started
with, taken once. Its saves and weight writes carry it, so a leader deposed mid-pass writes
nothing more: the epoch has moved on. Commands from the admin API run without one (any
replica accepts them; compare-and-set on the record orders them)."""

_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch, 'PX', ARGV[2])
  return epoch
end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class Leadership:
    def __init__(
        self, redis: RedisClient, keys: Keys, instance: str, *, lease_s: float = 10.0
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._instance = instance
        self._lease_ms = int(lease_s * 1000)
        self._renew = redis.register_script(_RENEW)
        self._take = redis.register_script(_TAKE)
        self.epoch: int | None = None
        """The fencing epoch while this process leads; None otherwise."""
        self._held = ""

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    async def try_lead(self) -> bool:
        """Renew the lease if held, else try to take it. Returns whether this process leads."""
        if self.epoch is not None:
            if await self._renew(keys=[self._keys.leader], args=[self._held, self._lease_ms]):
                return True
            log.warning("lost the lease (epoch %d)", self.epoch)
            self.epoch = None
        # Take the lease and bump the epoch in one step: fencing follows leadership exactly.
        epoch = int(
            await self._take(
                keys=[self._keys.leader, self._keys.epoch], args=[self._instance, self._lease_ms]
            )
        )
        if not epoch:
            return False
        self.epoch = epoch
        self._held = f"{self._instance} {epoch}"
        log.info("leading the control planes (epoch %d)", epoch)
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.try_lead()
            except (RedisError, OSError) as exc:
                log.debug("leadership: Redis unavailable: %s", exc)
                self.epoch = None
            await asyncio.sleep(self._lease_ms / 3000)
