"""One process's data plane: the routing table, endpoint health, the upstream client, the handler.

The proxy runs on aiohttp's low-level ``web.Server``: one handler, no router, because every
path belongs to the routes (except the proxy's own ``/healthz`` and ``/readyz``), and a
router would refuse some requests (a ``CONNECT`` target has no path) before our checks run.
"""

from __future__ import annotations

from aiohttp import web

from config.schema import SplitgateConfig
from proxy.client import AiohttpClient, UpstreamClient
from proxy.endpoints import EndpointPool
from proxy.forward import Forwarder
from proxy.health import Health, healthz, readyz
from proxy.table import RoutingTable, TableRef

RESERVED_PATHS = ("/healthz", "/readyz")
"""Answered by the proxy itself, whatever the routes say."""


class ProxyApp:
    """Build it with an event loop running; ``close()`` it after the server has stopped."""

    def __init__(
        self,
        config: SplitgateConfig,
        *,
        internal_secret: str | None = None,
        client: UpstreamClient | None = None,
    ) -> None:
        settings = config.proxy
        self.config = config
        self.pool = EndpointPool(settings.outlier_detection)
        self.table = TableRef(RoutingTable.build(config, self.pool))
        self.health = Health()
        self.client: UpstreamClient = client or AiohttpClient(
            connect_timeout=settings.timeouts.connect,
            keepalive=settings.timeouts.upstream_keepalive,
            limit_per_host=settings.limits.max_connections_per_upstream,
        )
        self._forward = Forwarder(
            self.table, settings, self.client, self.pool, internal_secret
        ).handle

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == "/healthz":
            return healthz()
        if path == "/readyz":
            return readyz(self.table, self.health)
        return await self._forward(request)

    async def close(self) -> None:
        await self.client.close()
