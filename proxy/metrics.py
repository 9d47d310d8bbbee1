"""The proxy's Prometheus endpoint, ``/metrics``.

So far it reports the routing state: the generation in use, how stale it is, whether Redis
is reachable, and how many documents were refused. Every value is read at scrape time from
the objects that own it, so nothing on the request path writes to a metric here.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from proxy.table import TableRef
from proxy.watcher import RoutingWatcher


class ProxyMetrics:
    def __init__(self, table: TableRef, watcher: Callable[[], RoutingWatcher | None]) -> None:
        self.registry = CollectorRegistry()

        def stale() -> float:
            w = watcher()
            seconds = w.stale_seconds() if w is not None else None
            return -1.0 if seconds is None else seconds

        def gauge(name: str, doc: str, read: Callable[[], float]) -> None:
            Gauge(name, doc, registry=self.registry).set_function(read)

        gauge(
            "splitgate_routing_generation",
            "Generation of the routing table in use (0: the config file).",
            lambda: table.current.generation,
        )
        gauge(
            "splitgate_routing_stale_seconds",
            "Seconds since Redis last confirmed the routing (-1: never, or not following Redis).",
            stale,
        )
        gauge(
            "splitgate_redis_connected",
            "1 while the routing watcher is connected to Redis.",
            lambda: 1.0 if (w := watcher()) is not None and w.connected else 0.0,
        )
        gauge(
            "splitgate_routing_documents_rejected",
            "Routing documents refused because they did not validate.",
            lambda: float(w.rejected) if (w := watcher()) is not None else 0.0,
        )

    def response(self) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
