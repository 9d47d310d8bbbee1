"""``/healthz`` (the process is alive) and ``/readyz`` (it should get traffic).

Ready means a routing table is loaded and the process is not draining. A proxy that lost
Redis stays ready: it keeps routing with its last good table (fail static); the body says how
stale that table is, so an operator sees the reason behind a probe, not just a status.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from config import jsonsafe
from proxy.errors import error_response
from proxy.table import TableRef

if TYPE_CHECKING:
    from proxy.watcher import RoutingWatcher

json_response = partial(web.json_response, dumps=jsonsafe.dumps)
"""Strict JSON answers: no NaN or Infinity (``config.jsonsafe``)."""


class Health:
    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False


def healthz() -> web.Response:
    return json_response({"status": "ok"})


def not_here() -> web.Response:
    """404 for ``/metrics`` on the client port while an operations port serves it, and for
    any path of the operations port but the proxy's own three."""
    return error_response(
        404, "not_found", "not served here: /metrics, /healthz and /readyz are on the ops port"
    )


def readyz(table: TableRef, health: Health, watcher: RoutingWatcher | None) -> web.Response:
    current = table.current
    details: dict[str, Any] = {
        "ready": not health.draining,
        "draining": health.draining,
        "generation": current.generation,
        "source": "file" if current.generation == 0 else "redis",
        "routes": [route.name for route in current.routes],
    }
    if watcher is not None:
        stale = watcher.stale_seconds()
        details["redis"] = {
            "connected": watcher.connected,
            "document_missing": watcher.document_missing,
            "stale_seconds": None if stale is None else round(stale, 3),
            "rejected_documents": watcher.rejected,
            "digest": watcher.digest or None,
            "store_generation": watcher.store_generation,
            "behind_looks": watcher.behind,
        }
    return json_response(details, status=503 if health.draining else 200)
