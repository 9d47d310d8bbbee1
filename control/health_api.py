"""The control plane's own health, for probes and scrapers: ``/healthz``, ``/readyz`` and
``/metrics``.

All three answer without the admin token: a Kubernetes probe or a Prometheus
scrape has none. None says more than names, counts and times (no record's content, no
error message: those are in the log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from config import jsonsafe
from control.api_table import Operation

Status = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

STATUS: web.AppKey[Status] = web.AppKey("status")
REGISTRY = web.AppKey("registry", CollectorRegistry)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=jsonsafe.dumps)


async def readyz(request: web.Request) -> web.Response:
    """200 while Redis answers, else 503; ``details`` shows each loop's passes and errors."""
    ready, details = await request.app[STATUS]()
    body = {"status": "ready" if ready else "not_ready", "details": details}
    return web.json_response(body, status=200 if ready else 503, dumps=jsonsafe.dumps)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def ready_without_loops() -> tuple[bool, dict[str, Any]]:
    """The status of an API served without the control plane's loops (tests, tools)."""
    return True, {}


OPERATIONS = (
    Operation(
        "GET",
        "/healthz",
        healthz,
        "Alive (no token needed)",
        ok="Alive",
        public=True,
        responses={"200": {"description": "Alive"}},
    ),
    Operation(
        "GET",
        "/readyz",
        readyz,
        "Ready while Redis answers; each loop's passes and errors, leadership and the "
        "quarantined rollouts in `details` (no token needed)",
        public=True,
        responses={
            "200": {"description": "Ready"},
            "503": {"description": "Redis unreachable"},
        },
    ),
    Operation(
        "GET",
        "/metrics",
        metrics,
        "The control plane's Prometheus metrics, among them "
        "splitgate_control_loop_errors_total{loop} (no token needed)",
        public=True,
        responses={"200": {"description": "Prometheus text format"}},
    ),
)
