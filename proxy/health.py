"""``/healthz`` (the process is alive) and ``/readyz`` (it should get traffic).

Ready means a routing table is loaded and the process is not draining. The body says why, so
an operator looking at a failing probe sees the reason, not just a status.
"""

from __future__ import annotations

from aiohttp import web

from proxy.table import TableRef


class Health:
    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False


def healthz() -> web.Response:
    return web.json_response({"status": "ok"})


def readyz(table: TableRef, health: Health) -> web.Response:
    current = table.current
    details = {
        "ready": not health.draining,
        "draining": health.draining,
        "generation": current.generation,
        "routes": [route.name for route in current.routes],
    }
    return web.json_response(details, status=503 if health.draining else 200)
