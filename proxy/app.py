"""One process's data plane: the routing table, endpoint health, the upstream client, the handler.

The proxy runs on aiohttp's low-level ``web.Server``: one handler, no router, because every
path belongs to the routes (except the proxy's own ``/healthz``, ``/readyz`` and
``/metrics``), and a router would refuse some requests (a ``CONNECT`` target has no path)
before our checks run.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from aiohttp import web

from config.keys import StoredDocument, UpstreamHealth
from config.schema import SplitgateConfig
from config.stickiness import ClientAddress
from proxy.client import UpstreamClient
from proxy.decisions import DecisionLog
from proxy.endpoints import EndpointPool
from proxy.feedback import FeedbackEndpoint, RateLimiter
from proxy.forward import Forwarder
from proxy.health import Health, healthz, not_here, readyz
from proxy.metrics import ProxyMetrics
from proxy.pool import PooledClient
from proxy.settings import Follow as Follow
from proxy.shadow import Mirror
from proxy.stats import StatsRegistry
from proxy.table import RoutingTable, TableRef

if TYPE_CHECKING:
    from proxy.flusher import MetricsFlusher
    from proxy.redis_client import RedisClient
    from proxy.watcher import RoutingWatcher

RESERVED_PATHS = ("/healthz", "/readyz", "/metrics", "POST /v1/feedback")
"""Answered by the proxy itself, whatever the routes say."""

log = logging.getLogger("splitgate.proxy")


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
        self.ops_apart = False
        """``/metrics`` is on the operations port (``--ops-listen``), not the client port."""
        self.client: UpstreamClient = client or PooledClient(
            connect_timeout=settings.timeouts.connect,
            keepalive=settings.timeouts.upstream_keepalive,
            limit_per_host=settings.limits.max_connections_per_upstream,
        )
        # Without a shared key, ids are signed with one of this process's own: feedback then
        # verifies only on this process's public endpoint.
        self.signing_key = signing_key or os.urandom(32)
        self.decisions = DecisionLog(settings.decision_log)
        self.mirror = Mirror(self.client, self.pool, self.signing_key)
        self._forward = Forwarder(
            self.table,
            settings,
            self.client,
            self.pool,
            internal_secret,
            self.signing_key,
            self.decisions,
            self.mirror,
        ).handle
        self._follow = follow
        self.watcher: RoutingWatcher | None = None
        self._redis: RedisClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.flusher: MetricsFlusher | None = None
        self.feedback = FeedbackEndpoint(
            self.signing_key,
            self.stats,
            ClientAddress(settings.trusted_proxies),
            RateLimiter(settings.feedback.rate_per_second, settings.feedback.burst),
        )
        self.metrics = ProxyMetrics(
            self.table,
            self.stats,
            lambda: self.watcher,
            lambda: self.flusher,
            self.pool.now,
            decisions=self.decisions,
            mirror=self.mirror,
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
        # redis-py (about 15 MiB) and the loops that use it load only when the proxy follows
        # Redis: a proxy serving a file never imports them.
        from proxy.following import join

        self._redis, self.watcher, self.flusher, self._tasks = await join(
            follow,
            self.apply,
            lambda: self.table.current.generation,
            self.stats,
            self.upstream_health,
            self.decisions,
            self.mirror,
        )

    def upstream_health(self) -> dict[str, UpstreamHealth]:
        """Each upstream of the current table and its passive health (reported in the ack)."""
        urls = dict.fromkeys(
            endpoint.url
            for route in self.table.current.routes
            for track in route.tracks.values()
            for endpoint in track.balancer.endpoints
        )
        return self.pool.health(urls)

    async def handle_ops(self, request: web.BaseRequest) -> web.StreamResponse:
        """The operations port (``--ops-listen``): the proxy's own endpoints, nothing routed."""
        path = request.path
        if path == "/healthz":
            return healthz()
        if path == "/readyz":
            return readyz(self.table, self.health, self.watcher)
        if path == "/metrics":
            return self.metrics.response()
        return not_here()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        target = request.raw_path  # as sent: no URL object for every request
        path = target.partition("?")[0] if target[:1] == "/" else request.path
        if path == "/healthz":
            return healthz()
        if path == "/readyz":
            return readyz(self.table, self.health, self.watcher)
        if path == "/metrics":
            return not_here() if self.ops_apart else self.metrics.response()
        if path == "/v1/feedback" and request.method == "POST":
            return await self.feedback.handle(request)
        return await self._forward(request)

    async def close(self) -> None:
        await self.mirror.close()  # copies are not drained: they never answer anyone
        if self._follow is not None and self._redis is not None:
            from proxy.following import leave

            await leave(self._redis, self._tasks, self.flusher)
        await self.client.close()
