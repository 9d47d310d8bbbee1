"""The proxy's Prometheus endpoint, ``/metrics``.

Per route, track and version: requests, errors by class, clients that went away, latency and
time-to-first-byte histograms (seconds), and tokens from the responses' ``usage``. Labels are
route, track, version, mode (live or shadow) and error class only: no user ids, paths or models, so the number of
series stays bounded by the routing document. The same series under ``splitgate_flag_*``, with
a ``flag`` label, count the requests each feature flag released (the ``splitgate_*`` totals
include them): bounded by the flags the documents held. Plus the routing state: the generation in use,
how stale it is, whether Redis is reachable, documents refused; each track's weight and role
(baseline, candidate, other), so a rule can compare a candidate with its route's baseline;
and each upstream's ejections (passive health). Those read the current table: bounded by the
routing document in use.

Everything is read at scrape time from the objects that own it (``StatsRegistry``, the table,
the watcher); the request path never touches a prometheus-client object.

With several worker processes a scrape of the shared port answers for all of them
(``proxy.worker_metrics``): counters and histograms summed, a process's own state per worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from config.srm import sample_ratio
from proxy.stats import BUCKET_BOUNDS_MS, ERROR_CLASSES, StatsRegistry, TrackStats
from proxy.table import CompiledRoute, TableRef

if TYPE_CHECKING:
    from proxy.decisions import DecisionLog
    from proxy.flusher import MetricsFlusher
    from proxy.shadow import Mirror
    from proxy.watcher import RoutingWatcher
    from proxy.worker_metrics import WorkerShare

LABELS = ["route", "track", "version"]
MODE_LABELS = [*LABELS, "mode"]
"""``mode``: ``live`` for the requests users sent, ``shadow`` for a route's mirrored copies."""
FLAG_LABELS = [*LABELS, "flag"]
_EXPOSED = range(0, len(BUCKET_BOUNDS_MS), 2)
"""Every second bound (a factor of √2): precise enough for dashboards, half the series."""


class TrackCollector(Collector):
    """Per track (every request, flag-released ones included) and, under ``splitgate_flag_*``
    with a ``flag`` label, the requests each feature flag released."""

    def __init__(self, stats: StatsRegistry) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        everything = list(self._stats)
        totals: dict[tuple[str, str, str, str], list[TrackStats]] = {}
        for s in everything:
            totals.setdefault((s.route, s.track, s.version, s.mode), []).append(s)
        yield from _families(
            "splitgate", MODE_LABELS, [(list(key), group) for key, group in totals.items()]
        )
        yield from _families(
            "splitgate_flag",
            FLAG_LABELS,
            [([s.route, s.track, s.version, s.flag], [s]) for s in everything if s.flag],
            " Requests a feature flag released.",
        )
        yield self._feedback(everything)

    @staticmethod
    def _feedback(everything: list[TrackStats]) -> Metric:
        family = CounterMetricFamily(
            "splitgate_feedback",
            "Feedback received on this proxy, by kind.",
            labels=[*LABELS, "kind"],
        )
        for s in everything:
            if s.mode != "live":
                continue
            for name, value in sorted(s.feedback.items()):
                family.add_metric([s.route, s.track, s.version, name.removeprefix("fb:")], value)
        return family


def _families(
    prefix: str,
    labels: list[str],
    groups: list[tuple[list[str], list[TrackStats]]],
    scope: str = "",
) -> Iterator[Metric]:
    """Counters and histograms of each group of stats (summed), labelled with its key."""
    requests = CounterMetricFamily(
        f"{prefix}_requests", "Requests answered, by track." + scope, labels=labels
    )
    errors = CounterMetricFamily(
        f"{prefix}_request_errors",
        "Failed requests by error class." + scope,
        labels=[*labels, "class"],
    )
    gone = CounterMetricFamily(
        f"{prefix}_client_disconnects",
        "Clients that went away before the end." + scope,
        labels=labels,
    )
    tokens = CounterMetricFamily(
        f"{prefix}_tokens",
        "Tokens reported in the responses' usage." + scope,
        labels=[*labels, "kind"],
    )
    latency = HistogramMetricFamily(
        f"{prefix}_request_duration_seconds", "Whole-request latency." + scope, labels=labels
    )
    ttfb = HistogramMetricFamily(
        f"{prefix}_time_to_first_byte_seconds",
        "From the request to the first body byte (the first token on streams)." + scope,
        labels=labels,
    )
    for key, group in groups:
        requests.add_metric(key, sum(s.requests for s in group))
        for name in ERROR_CLASSES:
            errors.add_metric([*key, name], sum(s.errors[name] for s in group))
        gone.add_metric(key, sum(s.client_gone for s in group))
        tokens.add_metric([*key, "prompt"], sum(s.prompt_tokens for s in group))
        tokens.add_metric([*key, "completion"], sum(s.completion_tokens for s in group))
        latency.add_metric(
            key,
            _buckets([sum(c) for c in zip(*(s.latency for s in group), strict=True)]),
            sum(s.latency_sum_ms for s in group) / 1000,
        )
        ttfb.add_metric(
            key,
            _buckets([sum(c) for c in zip(*(s.ttfb for s in group), strict=True)]),
            sum(s.ttfb_sum_ms for s in group) / 1000,
        )
    yield from (requests, errors, gone, tokens, latency, ttfb)


def _buckets(counts: list[int]) -> list[tuple[str, float]]:
    cumulative = list(accumulate(counts))
    out = [(repr(BUCKET_BOUNDS_MS[i] / 1000), float(cumulative[i])) for i in _EXPOSED]
    out.append(("+Inf", float(cumulative[-1])))
    return out


class SampleRatioCollector(Collector):
    """Observed split against the weights, over what the current table has routed."""

    def __init__(self, table: TableRef) -> None:
        self._table = table

    def collect(self) -> Iterator[Metric]:
        p_value = GaugeMetricFamily(
            "splitgate_sample_ratio_p_value",
            "Chi-square p-value of the observed split against the weights since the last table change (-1: too few requests).",
            labels=["route"],
        )
        mismatch = GaugeMetricFamily(
            "splitgate_sample_ratio_mismatch",
            "1 when the observed split does not match the weights (p < 0.001).",
            labels=["route"],
        )
        for route in self._table.current.routes:
            observed = {
                name: t.stats.assigned - route.assigned_at_build[name]
                for name, t in route.tracks.items()
            }
            result = sample_ratio(observed, route.weights)
            p_value.add_metric([route.name], -1.0 if result.p_value is None else result.p_value)
            mismatch.add_metric([route.name], 1.0 if result.mismatch else 0.0)
        yield from (p_value, mismatch)


class RoutingCollector(Collector):
    """Each track's weight and role, and each upstream's ejections, in the current table."""

    def __init__(self, table: TableRef, clock: Callable[[], float]) -> None:
        self._table = table
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        weight = GaugeMetricFamily(
            "splitgate_track_weight",
            "Weight of the track in the routing in use, in percent; role: baseline, candidate "
            "(the first listed other track) or other.",
            labels=[*LABELS, "role"],
        )
        ejections = CounterMetricFamily(
            "splitgate_upstream_ejections",
            "Times passive health ejected the upstream (since the process started).",
            labels=["route", "track", "upstream"],
        )
        ejected = GaugeMetricFamily(
            "splitgate_upstream_ejected",
            "1 while passive health keeps the upstream out of its track's balancing.",
            labels=["route", "track", "upstream"],
        )
        now = self._clock()
        for route in self._table.current.routes:
            roles = _roles(route)
            for name, track in route.tracks.items():
                weight.add_metric(
                    [route.name, name, track.version, roles[name]], route.weights[name]
                )
                for endpoint in track.balancer.endpoints:
                    key = [route.name, name, endpoint.url]
                    ejections.add_metric(key, endpoint.ejections)
                    ejected.add_metric(key, 1.0 if endpoint.ejected_until > now else 0.0)
        yield from (weight, ejections, ejected)


def _roles(route: CompiledRoute) -> dict[str, str]:
    """The baseline, the candidate (the first listed other track), and the rest."""
    baseline = route.baseline.name
    others = [name for name in route.tracks if name != baseline]
    roles = dict.fromkeys(others, "other")
    if others:
        roles[others[0]] = "candidate"
    roles[baseline] = "baseline"
    return roles


class ShadowCollector(Collector):
    """Shadow copies in flight and requests not mirrored, per route (``proxy.shadow``)."""

    def __init__(self, mirror: Mirror) -> None:
        self._mirror = mirror

    def collect(self) -> Iterator[Metric]:
        dropped = CounterMetricFamily(
            "splitgate_shadow_dropped",
            "Requests drawn for mirroring but not copied (in_flight, tokens: over the route's "
            "limits; streamed_body: too large to keep) and pairs not kept (pairs).",
            labels=["route", "reason"],
        )
        in_flight = GaugeMetricFamily(
            "splitgate_shadow_in_flight",
            "Shadow copies running now on this process.",
            labels=["route"],
        )
        for route, gate in sorted(self._mirror.gates.items()):
            for reason, count in gate.dropped.items():
                dropped.add_metric([route, reason], count)
            in_flight.add_metric([route], gate.in_flight)
        yield from (dropped, in_flight)


class ProxyMetrics:
    def __init__(
        self,
        table: TableRef,
        stats: StatsRegistry,
        watcher: Callable[[], RoutingWatcher | None],
        flusher: Callable[[], MetricsFlusher | None],
        clock: Callable[[], float] = time.monotonic,
        decisions: DecisionLog | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        """``clock``: the endpoint pool's, against which ejections end."""
        self.registry = CollectorRegistry()
        self.share: WorkerShare | None = None
        """With ``--workers N``: the figures of every worker answer each scrape."""
        self.registry.register(TrackCollector(stats))
        self.registry.register(RoutingCollector(table, clock))

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
        self.registry.register(SampleRatioCollector(table))
        if mirror is not None:
            self.registry.register(ShadowCollector(mirror))
        gauge(
            "splitgate_metrics_flush_failures",
            "Flushes of metric windows to Redis that failed (their counts wait for the next).",
            lambda: float(f.failures) if (f := flusher()) is not None else 0.0,
        )
        gauge(
            "splitgate_metrics_dropped_requests",
            "Requests whose counts were dropped from Redis windows because Redis stayed down.",
            lambda: float(f.dropped_requests) if (f := flusher()) is not None else 0.0,
        )
        gauge(
            "splitgate_decisions_dropped",
            "Routing decisions the decision log dropped (over its cap, or failed to write).",
            lambda: float(decisions.dropped) if decisions is not None else 0.0,
        )
        gauge(
            "splitgate_routing_documents_rejected",
            "Routing documents refused because they did not validate.",
            lambda: float(w.rejected) if (w := watcher()) is not None else 0.0,
        )

    def response(self) -> web.Response:
        body = self.share.exposition() if self.share is not None else generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
