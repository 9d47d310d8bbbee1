"""The data-plane application: its state under typed keys, its resources in ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from config.schema import SplitgateConfig
from proxy.client import AiohttpClient, UpstreamClient
from proxy.endpoints import EndpointPool
from proxy.forward import Forwarder
from proxy.health import Health, health_routes
from proxy.table import RoutingTable, TableRef

TABLE = web.AppKey("table", TableRef)
HEALTH = web.AppKey("health", Health)
POOL = web.AppKey("pool", EndpointPool)
CLIENT = web.AppKey("client", UpstreamClient)

RESERVED_PATHS = ("/healthz", "/readyz")
"""Answered by the proxy itself, whatever the routes say."""


def create_app(
    config: SplitgateConfig,
    *,
    internal_secret: str | None = None,
    client: UpstreamClient | None = None,
) -> web.Application:
    """Build the proxy application. Call it with an event loop running."""
    settings = config.proxy
    app = web.Application(client_max_size=settings.limits.max_body_bytes)
    pool = EndpointPool(settings.outlier_detection)
    table = TableRef(RoutingTable.build(config, pool))
    if client is None:
        client = AiohttpClient(
            connect_timeout=settings.timeouts.connect,
            keepalive=settings.timeouts.upstream_keepalive,
            limit_per_host=settings.limits.max_connections_per_upstream,
        )
    app[TABLE] = table
    app[HEALTH] = Health()
    app[POOL] = pool
    app[CLIENT] = client
    app.cleanup_ctx.append(_close_client)
    forwarder = Forwarder(table, settings, client, pool, internal_secret)
    app.add_routes(health_routes(table, app[HEALTH]))
    app.router.add_route("*", "/{tail:.*}", forwarder.handle)
    return app


async def _close_client(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[CLIENT].close()
