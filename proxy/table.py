"""The routing table: an immutable snapshot compiled from the routing document.

Requests read ``TableRef.current`` once and use that object to the end; a new document is
compiled into a new table and swapped in by one assignment, so a request never sees half of
an update. Everything a request needs is precomputed here: bucket bounds, salt bytes and the
response header values of each track.

Bucket layout of a route: the candidate (first listed non-baseline track) owns ``[0, w)``, the
other non-baseline tracks follow in listed order, and the baseline owns the top of the range.
Raising the candidate's weight while lowering the baseline's moves only baseline users onto
the candidate, and lowering it moves the most recently added users back first.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from config.feedback import track_payload
from config.schema import BUCKETS, Route, RoutingDocument, weight_to_basis_points
from proxy.affinity import Source, compile_sources
from proxy.endpoints import Balancer, EndpointPool
from proxy.hashing import bucket, salt_prefix
from proxy.stats import StatsRegistry, TrackStats


@dataclass(frozen=True, slots=True)
class CompiledTrack:
    name: str
    version: str
    balancer: Balancer
    stats: TrackStats
    feedback_payload: str
    """The route/track/version part of the signed request ids (``config.feedback``)."""


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    path_prefix: str
    host: str | None
    stickiness: tuple[Source, ...]
    salt: bytes
    bounds: tuple[int, ...]
    """Exclusive upper bucket bound of each entry of ``ordered``."""
    ordered: tuple[CompiledTrack, ...]
    """Tracks in bucket order: candidate first, baseline last; zero-weight tracks left out."""
    tracks: dict[str, CompiledTrack]
    baseline: CompiledTrack
    weights: dict[str, float]
    assigned_at_build: dict[str, int]
    """Each track's assigned count when this table was built: the sample-ratio check counts
    only what this table's weights decided."""
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def bucket_of(self, key: str) -> int:
        return bucket(self.salt, key)

    def track_for_bucket(self, value: int) -> CompiledTrack:
        return self.ordered[bisect_right(self.bounds, value)]

    def pick(self, key: str | None) -> CompiledTrack:
        """The track for a sticky ``key``; no key gets a random track, drawn by weight."""
        value = self._rng.randrange(BUCKETS) if key is None else bucket(self.salt, key)
        return self.ordered[bisect_right(self.bounds, value)]


@dataclass(frozen=True, slots=True)
class RoutingTable:
    generation: int
    routes: tuple[CompiledRoute, ...]
    """Longest path prefix first; a route with a host comes before one without."""

    def match(self, path: str, host: str | None) -> CompiledRoute | None:
        """The route for a request path and ``Host`` header value (port and case ignored)."""
        hostname: str | None = None
        for route in self.routes:
            if not path.startswith(route.path_prefix):
                continue
            if route.host is None:
                return route
            if hostname is None:
                hostname = _hostname(host)
            if route.host == hostname:
                return route
        return None

    @classmethod
    def build(
        cls,
        document: RoutingDocument,
        pool: EndpointPool,
        generation: int = 0,
        stats: StatsRegistry | None = None,
    ) -> RoutingTable:
        """Compile a validated document; generation 0 means "from the config file"."""
        registry = stats if stats is not None else StatsRegistry()
        compiled = [_compile_route(route, pool, registry) for route in document.routes]
        compiled.sort(key=lambda r: (r.host is None, -len(r.path_prefix)))
        return cls(generation=generation, routes=tuple(compiled))


class TableRef:
    """The one mutable cell: which table is current. Replaced whole, never edited."""

    __slots__ = ("current",)

    def __init__(self, table: RoutingTable) -> None:
        self.current = table


def _hostname(host: str | None) -> str:
    if not host:
        return ""
    if host.startswith("["):
        return host[: host.find("]") + 1].lower()
    name, _, port = host.rpartition(":")
    return (name if name and port.isdigit() else host).lower()


def bucket_order(route: Route) -> list[str]:
    """Track names in bucket order: candidate, other non-baseline tracks, baseline."""
    baseline = route.baseline_name()
    return [t.name for t in route.tracks if t.name != baseline] + [baseline]


def _compile_route(route: Route, pool: EndpointPool, stats: StatsRegistry) -> CompiledRoute:
    tracks = {
        t.name: CompiledTrack(
            name=t.name,
            version=t.version,
            balancer=Balancer([pool.get(url) for url in t.upstreams], route.balance),
            stats=stats.get(route.name, t.name, t.version),
            feedback_payload=track_payload(route.name, t.name, t.version),
        )
        for t in route.tracks
    }
    weights = {t.name: weight_to_basis_points(t.weight) for t in route.tracks}
    ordered, bounds = _layout(bucket_order(route), weights)
    return CompiledRoute(
        name=route.name,
        path_prefix=route.match.path_prefix,
        host=route.match.host,
        stickiness=compile_sources(route.stickiness),
        salt=salt_prefix(route.hash_salt()),
        bounds=tuple(bounds),
        ordered=tuple(tracks[name] for name in ordered),
        tracks=tracks,
        baseline=tracks[route.baseline_name()],
        weights={t.name: t.weight for t in route.tracks},
        assigned_at_build={name: t.stats.assigned for name, t in tracks.items()},
    )


def _layout(order: Sequence[str], weights: dict[str, int]) -> tuple[list[str], list[int]]:
    names: list[str] = []
    bounds: list[int] = []
    upper = 0
    for name in order:
        if weights[name] == 0:
            continue
        upper += weights[name]
        names.append(name)
        bounds.append(upper)
    # Weights add up to BUCKETS (validated), so every bucket value falls inside the bounds.
    return names, bounds
