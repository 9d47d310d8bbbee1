"""The control plane of one process: the store, the admin API, and the guardian.

The guardian (``control.guardian``) makes sure Redis always holds a routing document. At
start, an empty Redis is seeded from the config file. Later, if Redis comes back empty
(restarted without persistence, flushed), it is re-seeded from the last document this process
saw, never from zero weights, at a generation above any the fleet has applied, so every proxy
accepts it; if a failover lost the last writes, the last document is re-applied above them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from config.environments import EnvironmentsFile
from config.keys import Keys, StoredDocument
from config.schema import RoutingDocument
from config.tasks import stop
from control.admin import create_api
from control.decision_reader import DecisionReader
from control.guardian import Guardian
from control.leadership import Leadership
from control.loops import Loops
from control.notify import Notifier
from control.redis_client import RedisClient, write_wait
from control.rollout_store import RETENTION_S
from control.rollouts import Rollouts
from control.schedule import Schedules
from control.shadow_pairs import ShadowPairs
from control.store import DocumentStore
from control.windows import WindowReader

log = logging.getLogger("splitgate.control")

RUNNER = "rollout-runner"
SCHEDULES = "flag-schedules"


class ControlApp:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        seed: RoutingDocument,
        token: str,
        *,
        guard_s: float = 1.0,
        signing_key: bytes = b"",
        rollout_interval_s: float = 10.0,
        instance: str = "control",
        lease_s: float = 10.0,
        environments: EnvironmentsFile | None = None,
        webhooks: Sequence[str] = (),
        webhook_secret: bytes = b"",
        retention_s: float = RETENTION_S,
    ) -> None:
        self.redis = redis
        self.registry = CollectorRegistry()
        self.loops = Loops(self.registry)
        self.store = DocumentStore(redis, keys, wait=write_wait(redis))
        self.guardian = Guardian(self.store, seed, guard_s)
        windows = WindowReader(redis, keys)
        self.leadership = Leadership(redis, keys, instance, lease_s=lease_s)
        self.rollouts = Rollouts(
            redis,
            keys,
            self.store,
            windows,
            epoch=lambda: self.leadership.epoch,
            report=self.loops.reporter(RUNNER),
            retention_s=retention_s,
        )
        self.schedules = Schedules(
            redis,
            keys,
            self.store,
            epoch=lambda: self.leadership.epoch,
            report=self.loops.reporter(SCHEDULES),
        )
        self.api = create_api(
            self.store,
            windows,
            token,
            signing_key,
            self.rollouts,
            environments,
            self.schedules,
            status=self.status,
            registry=self.registry,
            decisions=DecisionReader(redis, keys),
            shadow_pairs=ShadowPairs(redis, keys),
        )
        self._guarding: asyncio.Task[None] | None = None
        self._rollout_interval_s = rollout_interval_s
        self._stepping: asyncio.Task[None] | None = None
        self._scheduling: asyncio.Task[None] | None = None
        self._leading: asyncio.Task[None] | None = None
        self.notifier = Notifier(redis, keys, webhooks, webhook_secret) if webhooks else None
        self._notifying: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.ensure_seeded()
        except (RedisError, OSError) as exc:
            log.warning("Redis not reachable at start (%s); will seed when it is", exc)
        self._guarding = asyncio.create_task(self.guardian.run(), name="guardian")
        # Only the leader steps rollouts and schedules; its writes carry its fencing epoch.
        leading = lambda: self.leadership.leading  # noqa: E731
        interval = self._rollout_interval_s
        self._stepping = asyncio.create_task(
            self.loops.run(RUNNER, interval, self.rollouts.step_all, leading), name=RUNNER
        )
        self._scheduling = asyncio.create_task(
            self.loops.run(SCHEDULES, interval, self.schedules.step_all, leading), name=SCHEDULES
        )
        self._leading = asyncio.create_task(self.leadership.run(), name="leadership")
        if self.notifier is not None:
            try:
                await self.notifier.start_from_now()
            except (RedisError, OSError) as exc:
                log.warning("webhooks: cannot read the event stream yet: %s", exc)
            # Only the leader delivers, so several control planes do not send duplicates.
            self._notifying = asyncio.create_task(
                self.notifier.run(lambda: self.leadership.leading), name="webhooks"
            )

    async def status(self) -> tuple[bool, dict[str, Any]]:
        """``/readyz``: ready while Redis answers; the loops' health and leadership beside."""
        try:
            await self.redis.ping()
            redis: dict[str, Any] = {"ok": True}
        except (RedisError, OSError) as exc:
            redis = {"ok": False, "error": type(exc).__name__}
        quarantined: int | None
        try:
            quarantined = await self.rollouts.records.quarantined_count() if redis["ok"] else None
        except (RedisError, OSError):
            quarantined = None
        details = {
            "redis": redis,
            "leading": self.leadership.leading,
            "loops": {name: h.as_json() for name, h in sorted(self.loops.health.items())},
            "quarantined_rollouts": quarantined,
            # Seen by the leader's last pass; each one's reason is in its schedule's answer.
            "unreadable_schedules": sorted(self.schedules.unreadable),
        }
        return bool(redis["ok"]), details

    async def ensure_seeded(self) -> StoredDocument:
        """Return the stored document, writing one first if Redis holds none."""
        return await self.guardian.ensure_seeded()

    async def close(self) -> None:
        tasks = (self._guarding, self._stepping, self._scheduling, self._leading, self._notifying)
        for task in tasks:
            if task is not None:
                await stop(task)
        if self.notifier is not None:
            await self.notifier.close()
        await self.redis.aclose()

    def web_app(self) -> web.Application:
        return self.api
