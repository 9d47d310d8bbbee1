"""Compiled routing tables: bucket layout, route matching, zero weights, more than two tracks."""

from __future__ import annotations

from typing import Any

from config.schema import SplitgateConfig
from proxy.endpoints import EndpointPool
from proxy.table import RoutingTable


def table(routes: list[dict[str, Any]]) -> RoutingTable:
    config = SplitgateConfig.model_validate({"routes": routes})
    return RoutingTable.build(config, EndpointPool(config.proxy.outlier_detection), generation=7)


def track(name: str, weight: float, port: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "version": f"v-{name}",
        "upstreams": [f"http://127.0.0.1:{port}"],
        "weight": weight,
    }


def test_candidate_owns_the_bottom_and_baseline_the_top() -> None:
    route = table(
        [{"name": "r", "tracks": [track("stable", 70), track("canary", 20), track("shadow", 10)]}]
    ).routes[0]
    assert [t.name for t in route.ordered] == ["canary", "shadow", "stable"]
    assert route.bounds == (2000, 3000, 10_000)
    assert route.track_for_bucket(1999).name == "canary"
    assert route.track_for_bucket(2000).name == "shadow"
    assert route.track_for_bucket(3000).name == "stable"


def test_explicit_baseline_and_first_track_default() -> None:
    blue_green = table(
        [{"name": "r", "baseline": "green", "tracks": [track("blue", 0), track("green", 100)]}]
    ).routes[0]
    assert blue_green.baseline.name == "green"
    assert [t.name for t in blue_green.ordered] == ["green"]
    first = table([{"name": "r", "tracks": [track("blue", 60), track("green", 40)]}]).routes[0]
    assert first.baseline.name == "blue"
    assert [t.name for t in first.ordered] == ["green", "blue"]


def test_zero_weight_tracks_never_get_hashed_users_but_stay_addressable() -> None:
    route = table([{"name": "r", "tracks": [track("stable", 100), track("canary", 0)]}]).routes[0]
    assert {route.pick(f"u{i}").name for i in range(2000)} == {"stable"}
    assert {route.pick(None).name for i in range(2000)} == {"stable"}
    assert route.tracks["canary"].version == "v-canary"


def test_match_prefers_longest_prefix_and_host() -> None:
    routes = table(
        [
            {"name": "all", "match": {"path_prefix": "/"}, "tracks": [track("stable", 100)]},
            {"name": "v1", "match": {"path_prefix": "/v1/"}, "tracks": [track("stable", 100)]},
            {
                "name": "emb",
                "match": {"path_prefix": "/v1/embeddings"},
                "tracks": [track("stable", 100)],
            },
            {
                "name": "host",
                "match": {"path_prefix": "/v1/", "host": "api.example"},
                "tracks": [track("stable", 100)],
            },
        ]
    )
    assert routes.generation == 7
    found = {p: routes.match(p, None) for p in ("/x", "/v1/chat", "/v1/embeddings")}
    assert {p: r.name for p, r in found.items() if r is not None} == {
        "/x": "all",
        "/v1/chat": "v1",
        "/v1/embeddings": "emb",
    }
    for host in ("api.example", "API.example:8080"):
        by_host = routes.match("/v1/chat", host)
        assert by_host is not None and by_host.name == "host"
    other = routes.match("/v1/chat", "api.example.evil:80")
    assert other is not None and other.name == "v1"


def test_no_route_matches() -> None:
    routes = table(
        [{"name": "v1", "match": {"path_prefix": "/v1/"}, "tracks": [track("stable", 100)]}]
    )
    assert routes.match("/v2/x", None) is None


def test_endpoint_state_is_shared_across_table_generations() -> None:
    config = SplitgateConfig.model_validate(
        {"routes": [{"name": "r", "tracks": [track("stable", 100)]}]}
    )
    pool = EndpointPool(config.proxy.outlier_detection)
    first = RoutingTable.build(config, pool).routes[0].baseline.balancer.endpoints[0]
    second = RoutingTable.build(config, pool, generation=2).routes[0].baseline.balancer.endpoints[0]
    assert first is second
