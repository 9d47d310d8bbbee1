"""The bucket mapping: pinned by golden vectors, uniform, and monotonic under a weight ramp."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from xxhash import xxh64_intdigest

from config.schema import SplitgateConfig
from config.stickiness import bucket, salt_prefix
from proxy.endpoints import EndpointPool
from proxy.table import RoutingTable

GOLDEN = json.loads(
    (Path(__file__).parent.parent / "golden" / "buckets.json").read_text(encoding="utf-8")
)


def route_with(candidate_weight: float, salt: str = "chat") -> RoutingTable:
    config = SplitgateConfig.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "salt": salt,
                    "tracks": [
                        {
                            "name": "stable",
                            "version": "1",
                            "upstreams": ["http://127.0.0.1:1"],
                            "weight": 100 - candidate_weight,
                        },
                        {
                            "name": "canary",
                            "version": "2",
                            "upstreams": ["http://127.0.0.1:2"],
                            "weight": candidate_weight,
                        },
                    ],
                }
            ]
        }
    )
    return RoutingTable.build(config, EndpointPool(config.proxy.outlier_detection))


def test_golden_vectors_never_change() -> None:
    for case in GOLDEN["vectors"]:
        assert bucket(salt_prefix(case["salt"]), case["key"]) == case["bucket"], case


def test_bucket_is_plain_xxh64_so_other_languages_agree() -> None:
    assert bucket(salt_prefix("chat"), "user_123") == xxh64_intdigest(b"chat:user_123") % 10_000


def test_golden_track_assignment() -> None:
    # Pinned users: if this changes, every deployed split would move users between tracks.
    route = route_with(10).routes[0]
    pinned = {"user_123": 9104, "user_124": 1566, "alice": 6735, "bob": 6694}
    assert {k: route.bucket_of(k) for k in pinned} == pinned
    assert {k: route.pick(k).name for k in pinned} == dict.fromkeys(pinned, "stable")
    assert (route.bucket_of("user_25"), route.pick("user_25").name) == (34, "canary")
    assert route.track_for_bucket(0).name == "canary"
    assert route.track_for_bucket(999).name == "canary"
    assert route.track_for_bucket(1000).name == "stable"
    assert route.track_for_bucket(9999).name == "stable"


def test_shares_within_half_a_point_over_100k_random_keys() -> None:
    rng = random.Random(20261128)
    keys = [f"user-{rng.getrandbits(64):x}" for _ in range(100_000)]
    for weight in (1, 5, 10, 25, 50, 90):
        route = route_with(weight).routes[0]
        canary = sum(1 for k in keys if route.pick(k).name == "canary")
        assert abs(canary / len(keys) * 100 - weight) < 0.5, (weight, canary)


def test_requests_without_key_are_spread_by_weight() -> None:
    route = route_with(25).routes[0]
    canary = sum(1 for _ in range(20_000) if route.pick(None).name == "canary")
    assert abs(canary / 20_000 * 100 - 25) < 1.5


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=50),
    low=st.integers(min_value=0, max_value=10_000),
    high=st.integers(min_value=0, max_value=10_000),
)
def test_raising_the_candidate_only_moves_users_onto_it(
    keys: list[str], low: int, high: int
) -> None:
    low, high = sorted((low, high))
    before = route_with(low / 100).routes[0]
    after = route_with(high / 100).routes[0]
    for key in keys:
        if before.pick(key).name == "canary":
            assert after.pick(key).name == "canary", key


def test_different_salts_pick_different_users() -> None:
    a = route_with(10, salt="rollout-a").routes[0]
    b = route_with(10, salt="rollout-b").routes[0]
    keys = [f"u{i}" for i in range(5_000)]
    in_a = {k for k in keys if a.pick(k).name == "canary"}
    in_b = {k for k in keys if b.pick(k).name == "canary"}
    # Independent 10 % samples overlap on about 1 % of users, far from identical.
    assert len(in_a & in_b) < len(in_a) * 0.3
