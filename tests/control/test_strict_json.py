"""Every admin API answer parses with a strict JSON parser (no NaN, no Infinity), also in the
states that produce non-finite figures: requests on a track at 0 % (the sample-ratio
chi-square is unbounded) and latencies above the histogram's top bucket (p95 unbounded)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from config.keys import Keys
from config.metrics import LATENCY_BUCKETS, WINDOW_TTL_S, field_name, window_start
from control.app import ControlApp
from control.openapi import OPENAPI
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN

PARAMS = {"route": "chat", "track": "canary", "id": "chat-00000000", "name": "nope"}


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield app
    await app.close()


def strict(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


async def served_then_zeroed(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    """Traffic on both tracks, some of it slower than the top bucket; then canary to 0 %."""
    key = Keys().metrics_window("chat", window_start(time.time()))
    fields: dict[str, int] = {}
    for track, version in (("stable", "v1"), ("canary", "v2")):
        fields[field_name(track, version, "requests")] = 400
        fields[field_name(track, version, "assigned")] = 400
        fields[field_name(track, version, f"lat:{LATENCY_BUCKETS - 1}")] = 400
        fields[field_name(track, version, f"ttfb:{LATENCY_BUCKETS - 1}")] = 400
    for name, value in fields.items():
        await raw_redis.hset(key, name, value)
    await raw_redis.expire(key, WINDOW_TTL_S)
    r = await client.put(
        "/v1/routes/chat/weights", json={"weights": {"stable": 100, "canary": 0}}, headers=AUTH
    )
    assert r.status == 200, await r.text()


async def test_every_get_answer_is_strict_json_after_a_track_goes_to_zero(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    await served_then_zeroed(client, raw_redis)
    # Every GET but the Prometheus text of /metrics and the dashboard's files answers JSON.
    paths = [
        p
        for p, ops in OPENAPI["paths"].items()
        if "get" in ops and p != "/metrics" and not p.startswith("/ui")
    ]
    assert {"/v1/routes/{route}/metrics", "/v1/routes/{route}/series"} <= set(paths)
    checked = 0
    for template in paths:
        path = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], template)
        r = await client.get(path, headers=AUTH)
        body = await r.text()
        assert r.content_type == "application/json", (path, r.status, body[:200])
        strict(body)  # raises on NaN / Infinity
        checked += 1
    assert checked >= 10


async def test_the_figures_that_have_no_finite_value_are_null(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    await served_then_zeroed(client, raw_redis)
    for path in ("/v1/routes/chat", "/v1/routes/chat/metrics?window=1m"):
        r = await client.get(path, headers=AUTH)
        body = strict(await r.text())
        ratio = body["sample_ratio"]
        # Requests on a 0 % track: unbounded chi-square, p = 0 (not judged: the weights
        # changed inside the window).
        assert (ratio["chi_square"], ratio["p_value"], ratio["judged"]) == (None, 0.0, False)
    metrics = strict(await (await client.get("/v1/routes/chat/metrics", headers=AUTH)).text())
    text = json.dumps(metrics)
    assert "Infinity" not in text and "NaN" not in text
