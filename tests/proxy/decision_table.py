"""A small compiled route (a 90/10 split and a feature flag) and finished exchanges on it,
for the decision log's tests."""

from __future__ import annotations

from config.schema import OutlierDetection, RoutingDocument
from proxy.endpoints import EndpointPool
from proxy.exchange import Exchange
from proxy.table import CompiledRoute, CompiledTrack, RoutingTable

DOCUMENT = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "match": {"path_prefix": "/"},
                "stickiness": ["header:x-user-id"],
                "tracks": [
                    {
                        "name": "stable",
                        "version": "v1",
                        "upstreams": ["http://127.0.0.1:9"],
                        "weight": 90,
                    },
                    {
                        "name": "canary",
                        "version": "v2",
                        "upstreams": ["http://127.0.0.1:9"],
                        "weight": 10,
                    },
                ],
            }
        ],
        "feature_flags": {
            "beta": {"route": "chat", "track": "canary", "target_groups": ["all_users"]}
        },
    }
)


def route(generation: int = 7) -> CompiledRoute:
    return RoutingTable.build(DOCUMENT, EndpointPool(OutlierDetection()), generation).routes[0]


def finished(
    route: CompiledRoute,
    nonce: str,
    *,
    chosen: str = "stable",
    answered: str | None = None,
    flag: bool = False,
    error: str | None = None,
    client_id: str | None = None,
    started: float = 100.0,
) -> Exchange:
    """An exchange as the forwarder leaves it when the request ends."""
    track: CompiledTrack = route.tracks[chosen]
    compiled_flag = None
    if flag:
        assert route.flags is not None
        compiled_flag = route.flags.flags[0]
    exchange = Exchange(
        client_id or f"{nonce}.payload.tag",
        nonce,
        client_id is not None,
        track,
        compiled_flag,
        7,
        started,
    )
    exchange.track = route.tracks[answered or chosen]
    exchange.error = error
    return exchange
