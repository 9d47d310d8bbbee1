"""The dashboard's time series: windows bucketed per version (pure), and the endpoint over a
real Redis with windows written as the proxies write them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from config.keys import Keys
from config.metrics import WINDOW_S, bucket_index_ms, field_name, window_start
from control.app import ControlApp
from control.redis_client import connect
from control.series import MAX_POINTS, bucket, step_for
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN


def fields(
    track: str, version: str, requests: int, errors: int = 0, ms: float = 100
) -> dict[str, str]:
    out = {
        field_name(track, version, "requests"): str(requests),
        field_name(track, version, f"lat:{bucket_index_ms(ms)}"): str(requests),
        field_name(track, version, f"ttfb:{bucket_index_ms(ms / 10)}"): str(requests),
    }
    if errors:
        out[field_name(track, version, "err:upstream_5xx")] = str(errors)
    return out


@pytest.mark.parametrize(
    ("span", "step", "points"), [(300, 10, 30), (3600, 30, 120), (6 * 3600, 180, 120), (60, 10, 6)]
)
def test_a_span_is_at_most_max_points_buckets_of_whole_windows(
    span: int, step: int, points: int
) -> None:
    assert step_for(span) == step
    assert span // step == points <= MAX_POINTS


def test_buckets_sum_their_windows_per_version_whichever_track_serves_it() -> None:
    windows = [
        (1000, {**fields("stable", "v1", 10), **fields("canary", "v2", 4, errors=1)}),
        (1010, {**fields("stable", "v1", 20), **fields("blue", "v2", 4, errors=1)}),
        (1020, {}),
        (1030, fields("stable", "v1", 30, ms=900)),
    ]
    out = bucket(windows, 20, now=2000)
    assert out["times"] == [1000, 1020]
    v1, v2 = out["versions"]["v1"], out["versions"]["v2"]
    assert v1["requests_per_s"] == [30 / 20, 30 / 20]
    assert v2["requests_per_s"] == [8 / 20, 0.0]
    assert v2["error_rate"] == [0.25, None]  # no requests: no rate, not zero
    assert v2["error_rate_by_class"] == {"upstream_5xx": [0.25, None]}
    assert "upstream_5xx" not in v1["error_rate_by_class"]  # classes without errors left out
    assert v1["latency_p50_ms"][1] is not None and v1["latency_p50_ms"][1] > 800
    assert v1["ttft_p95_ms"][0] is not None and v1["ttft_p95_ms"][0] < v1["latency_p95_ms"][0]
    assert v2["user_satisfaction"] == [None, None]


def test_the_bucket_in_progress_counts_its_rate_over_the_seconds_elapsed() -> None:
    out = bucket([(1000, fields("stable", "v1", 10))], 30, now=1005)
    assert out["versions"]["v1"]["requests_per_s"] == [2.0]


def test_no_windows_no_series() -> None:
    assert bucket([], 10, now=0) == {"times": [], "versions": {}}


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield app
    await app.close()


async def test_the_endpoint_reads_the_fleet_windows(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    now = window_start(time.time())
    for start in (now - WINDOW_S, now):
        key = Keys().metrics_window("chat", start)
        for name, value in fields("canary", "v2", 5).items():
            await raw_redis.hset(key, name, value)
    r = await client.get("/v1/routes/chat/series?window=5m", headers=AUTH)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["step_s"] == 10 and len(body["times"]) in (30, 31)
    assert body["tracks"] == {"v1": ["stable"], "v2": ["canary"]}
    series = body["versions"]["v2"]["requests_per_s"]
    assert len(series) == len(body["times"]) and sum(1 for v in series if v) == 2


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("?window=7h", 400, "window"),
        ("?window=soon", 400, "window"),
        ("?window=10s", 400, "window"),
    ],
)
async def test_a_bad_window_is_refused_naming_it(
    client: TestClient[Any, Any], query: str, status: int, field: str
) -> None:
    r = await client.get(f"/v1/routes/chat/series{query}", headers=AUTH)
    assert r.status == status
    assert (await r.json())["errors"][0]["field"] == field


async def test_an_unknown_route_is_404_and_no_token_401(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/v1/routes/nope/series", headers=AUTH)).status == 404
    assert (await client.get("/v1/routes/chat/series")).status == 401
