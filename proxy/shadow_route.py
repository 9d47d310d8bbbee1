"""A route's shadow, compiled with the routing table: where copies go and under which limits.

Built by ``proxy.table`` for a route whose document names a ``shadow`` (``config.shadow``);
the mirror (``proxy.shadow``) reads it on the request path without any lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.schema import Route
from config.shadow import Shadow
from proxy.endpoints import Balancer
from proxy.stats import StatsRegistry, TrackStats


@dataclass(frozen=True, slots=True)
class CompiledShadow:
    route: str
    track: str
    version: str
    balancer: Balancer
    stats: TrackStats
    """The copies' counts (``TrackStats.mode`` is ``shadow``)."""
    threshold: float
    """Requests are mirrored when a uniform draw in [0, 10,000) falls below this."""
    settings: Shadow


def compile_shadow(
    route: Route, balancers: dict[str, Balancer], stats: StatsRegistry
) -> CompiledShadow | None:
    """The route's shadow with the shadow track's balancer (the table's own), if it has one."""
    shadow = route.shadow
    if shadow is None:
        return None
    version = next(t.version for t in route.tracks if t.name == shadow.track)
    return CompiledShadow(
        route=route.name,
        track=shadow.track,
        version=version,
        balancer=balancers[shadow.track],
        stats=stats.get(route.name, shadow.track, version, mode="shadow"),
        threshold=float(shadow.threshold()),
        settings=shadow,
    )
