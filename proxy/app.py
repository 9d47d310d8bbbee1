"""One process's data plane: the routing table, endpoint health, the upstream client, the handler.

The proxy runs on aiohttp's low-level ``web.Server``: one handler, no router, because every
path belongs to the routes (except the proxy's own ``/healthz``, ``/readyz`` and
``/metrics``), and a router would refuse some requests (a ``CONNECT`` target has no path)
before our checks run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from aiohttp import web
from redis.exceptions import RedisError

from config.keys import Keys, StoredDocument
from config.schema import SplitgateConfig
from proxy.affinity import ClientAddress
from proxy.client import UpstreamClient
from proxy.endpoints import EndpointPool
from proxy.feedback import FeedbackEndpoint, RateLimiter
from proxy.flusher import MetricsFlusher
from proxy.forward import Forwarder
from proxy.health import Health, healthz, readyz
from proxy.metrics import ProxyMetrics
from proxy.pool import PooledClient
from proxy.redis_client import connect
from proxy.stats import StatsRegistry
from proxy.table import RoutingTable, TableRef
from proxy.watcher import RoutingWatcher

RESERVED_PATHS = ("/healthz", "/readyz", "/metrics", "POST /v1/feedback")
"""Answered by the proxy itself, whatever the routes say."""

log = logging.getLogger("splitgate.proxy")


@dataclass(frozen=True)
class Follow:
    """Follow the routing document in Redis instead of serving the file's routing alone."""

    redis_url: str
    instance: str
    keys: Keys = field(default_factory=Keys)
    poll_s: float = 1.0
    pubsub: bool = True
    first_sync_s: float = 1.0


class ProxyApp:
    """Build it with an event loop running; ``start()`` before serving, ``close()`` after."""

    def __init__(
        self,
        config: SplitgateConfig,
        *,
        internal_secret: str | None = None,
        client: UpstreamClient | None = None,
        follow: Follow | None = None,
        signing_key: bytes | None = None,
    ) -> None:
        settings = config.proxy
        self.config = config
        self.pool = EndpointPool(settings.outlier_detection)
        self.stats = StatsRegistry()
        self.table = TableRef(RoutingTable.build(config, self.pool, stats=self.stats))
        self.health = Health()
        self.client: UpstreamClient = client or PooledClient(
            connect_timeout=settings.timeouts.connect,
            keepalive=settings.timeouts.upstream_keepalive,
            limit_per_host=settings.limits.max_connections_per_upstream,
        )
        # Without a shared key, ids are signed with one of this process's own: feedback then
        # verifies only on this process's public endpoint.
        self.signing_key = signing_key or os.urandom(32)
        self._forward = Forwarder(
            self.table, settings, self.client, self.pool, internal_secret, self.signing_key
        ).handle
        self._follow = follow
        self.watcher: RoutingWatcher | None = None
        self._redis: object | None = None
        self._watching: asyncio.Task[None] | None = None
        self.flusher: MetricsFlusher | None = None
        self._flushing: asyncio.Task[None] | None = None
        self.feedback = FeedbackEndpoint(
            self.signing_key,
            self.stats,
            ClientAddress(settings.trusted_proxies),
            RateLimiter(settings.feedback.rate_per_second, settings.feedback.burst),
        )
        self.metrics = ProxyMetrics(
            self.table, self.stats, lambda: self.watcher, lambda: self.flusher
        )

    def apply(self, document: StoredDocument) -> None:
        """Swap in the routing of a validated document (the only writer of the table)."""
        self.table.current = RoutingTable.build(
            document, self.pool, document.generation, stats=self.stats
        )

    async def start(self) -> None:
        """Join Redis if asked to: one quick first look, then the watcher in the background.

        When Redis does not answer within ``first_sync_s`` the proxy serves the file's routing
        and the watcher keeps trying.
        """
        follow = self._follow
        if follow is None:
            return
        redis = connect(follow.redis_url)
        self._redis = redis
        self.watcher = RoutingWatcher(
            redis,
            follow.keys,
            follow.instance,
            self.apply,
            lambda: self.table.current.generation,
            poll_s=follow.poll_s,
            pubsub=follow.pubsub,
        )
        try:
            async with asyncio.timeout(follow.first_sync_s):
                await self.watcher.sync()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("Redis not reachable at start (%s): serving the file's routing", exc)
        self._watching = asyncio.create_task(self.watcher.run(), name="routing-watcher")
        self.flusher = MetricsFlusher(redis, follow.keys, self.stats)
        self._flushing = asyncio.create_task(self.flusher.run(), name="metrics-flusher")

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/healthz":
            return healthz()
        if path == "/readyz":
            return readyz(self.table, self.health, self.watcher)
        if path == "/metrics":
            return self.metrics.response()
        if path == "/v1/feedback" and request.method == "POST":
            return await self.feedback.handle(request)
        return await self._forward(request)

    async def close(self) -> None:
        for task in (self._watching, self._flushing):
            if task is not None:
                await stop(task)
        if self.flusher is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await self.flusher.flush()  # the last second's counts
        if self._redis is not None:
            await self._redis.aclose()  # type: ignore[attr-defined]
        await self.client.close()


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it to end. The cancellation is repeated: on
    Python 3.11 a cancellation that meets a library's own timeout can surface as a
    ``TimeoutError`` (an ``OSError``), which the loops catch and carry on from."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s ended with an error", task.get_name(), exc_info=task.exception())
