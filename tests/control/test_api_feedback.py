"""Rating feedback through the admin API's ``POST /v1/feedback`` against a real Redis: signed
request ids, hallucination flags and ratings counted in the track's metrics window, bad ids,
ratings and windows refused, and a 503 without a signing key (verdicts on shadow pairs:
``test_feedback_api.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from config.feedback import sign, track_payload
from config.keys import Keys
from control.app import ControlApp
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield app
    await app.close()


async def test_feedback_through_the_admin_api(redis_server: RedisServer, raw_redis: Redis) -> None:
    key = b"shared-signing-key"
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, signing_key=key)
    await app.start()
    try:
        async with TestClient(TestServer(app.web_app())) as c:
            rid = sign(key, "n1", track_payload("chat", "canary", "v2"))
            for body in (
                {"request_id": rid, "hallucination": True, "rating": 2},
                {"request_id": rid, "hallucination": False, "rating": 5},
            ):
                r = await c.post("/v1/feedback", json=body, headers=AUTH)
                assert r.status == 202, await r.text()
            r = await c.post(
                "/v1/feedback", json={"request_id": rid + "x", "rating": 1}, headers=AUTH
            )
            assert r.status == 422 and (await r.json())["error"]["param"] == "request_id"
            r = await c.post("/v1/feedback", json={"request_id": rid, "rating": 7}, headers=AUTH)
            assert r.status == 422 and (await r.json())["error"]["param"] == "rating"
            metrics = await (await c.get("/v1/routes/chat/metrics?window=1m", headers=AUTH)).json()
            canary = next(t for t in metrics["tracks"] if t["track"] == "canary")
            assert canary["hallucination_rate"] == 0.5 and canary["user_satisfaction"] == 3.5
            r = await c.get("/v1/routes/chat/metrics?window=1y", headers=AUTH)
            assert r.status == 400 and (await r.json())["error"]["param"] == "window"
    finally:
        await app.close()


async def test_feedback_needs_a_signing_key(client: TestClient[Any, Any]) -> None:
    r = await client.post("/v1/feedback", json={"request_id": "a.b.c", "rating": 3}, headers=AUTH)
    assert r.status == 503 and (await r.json())["error"]["code"] == "feedback_not_configured"
