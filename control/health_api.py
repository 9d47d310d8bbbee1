"""The control plane's own health, for probes and scrapers: ``/readyz`` and ``/metrics``.

Both answer without the admin token, like ``/healthz``: a Kubernetes probe or a Prometheus
scrape has none. Neither says more than names, counts and times (no record's content, no
error message: those are in the log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from config import jsonsafe

Status = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

STATUS: web.AppKey[Status] = web.AppKey("status")
REGISTRY = web.AppKey("registry", CollectorRegistry)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


async def readyz(request: web.Request) -> web.Response:
    """200 while Redis answers, else 503; ``details`` shows each loop's passes and errors."""
    ready, details = await request.app[STATUS]()
    body = {"status": "ready" if ready else "not_ready", "details": details}
    return web.json_response(body, status=200 if ready else 503, dumps=jsonsafe.dumps)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_health_routes(app: web.Application, status: Status, registry: CollectorRegistry) -> None:
    app[STATUS] = status
    app[REGISTRY] = registry
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
