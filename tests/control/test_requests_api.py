"""``GET /v1/requests/{id}`` against a real Redis: a logged decision, one not logged, a client's
own id, a forged id, bad input, and no signing key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from redis.asyncio import Redis

from config.decisions import RETENTION_S, SLOT_S, Decision, client_field, slot_start
from config.feedback import sign, track_payload
from config.keys import Keys
from control.app import ControlApp
from control.openapi import OPENAPI
from control.redis_client import connect
from control.request_cli import lines
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN

KEY = b"shared-signing-key"
ANSWER = OPENAPI["paths"]["/v1/requests/{id}"]["get"]["responses"]["200"]["content"][
    "application/json"
]["schema"]


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, signing_key=KEY)
    await app.start()
    yield app
    await app.close()


def decision(**fields: Any) -> str:
    base = {
        "route": "chat",
        "track": "canary",
        "version": "v2",
        "chosen": "canary",
        "rule": "weights",
        "bucket": 42,
        "generation": 3,
        "at": time.time() - 30,
    }
    return Decision.model_validate({**base, **fields}).model_dump_json()


async def get(client: TestClient[Any, Any], request_id: str) -> tuple[int, Any]:
    r = await client.get(f"/v1/requests/{request_id}", headers=AUTH)
    body = await r.json()
    if r.status == 200:
        Draft202012Validator(ANSWER).validate(body)
    return r.status, body


async def test_a_logged_decision_is_found_by_its_signed_id(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    rid = sign(KEY, "abc0000000001", track_payload("chat", "canary", "v2"))
    # Logged in an earlier slot: the lookup asks every slot still kept.
    await raw_redis.hset(
        Keys().decisions(slot_start(time.time()) - 2 * SLOT_S),
        "abc0000000001",
        decision(rule="flag:beta", bucket=17),
    )
    status, body = await get(client, rid)
    assert status == 200
    assert body == {
        "request_id": rid,
        "signed": True,
        "route": "chat",
        "track": "canary",
        "version": "v2",
        "logged": True,
        "lookup_period_s": RETENTION_S,
        "rule": "flag:beta",
        "bucket": 17,
        "generation": 3,
        "at": pytest.approx(time.time() - 30, abs=5),
        "chosen": "canary",
        "answered": "canary",
        "error": None,
        "shadow": None,
    }


async def test_a_mirrored_requests_decision_names_its_copy(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    rid = sign(KEY, "abc0000000002", track_payload("chat", "stable", "v1"))
    copy = {"track": "canary", "version": "v2", "pair_id": "abc0000000002.x.y"}
    await raw_redis.hset(
        Keys().decisions(slot_start(time.time())),
        "abc0000000002",
        decision(track="stable", version="v1", chosen="stable", shadow=copy),
    )
    status, body = await get(client, rid)
    assert status == 200 and body["shadow"] == copy
    assert "mirrored to canary (v2): pair abc0000000002.x.y" in lines(body, time.time())


async def test_a_signed_id_not_logged_still_answers_from_the_id(
    client: TestClient[Any, Any],
) -> None:
    rid = sign(KEY, "abc0000000002", track_payload("chat", "stable", "v1"))
    status, body = await get(client, rid)
    assert status == 200
    assert body == {
        "request_id": rid,
        "signed": True,
        "route": "chat",
        "track": "stable",
        "version": "v1",
        "logged": False,
        "lookup_period_s": RETENTION_S,
    }


async def test_a_clients_own_id_is_found_only_when_logged(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    await raw_redis.hset(
        Keys().decisions(slot_start(time.time())),
        client_field("order-17"),
        decision(track="stable", version="v1", chosen="canary", error="connect"),
    )
    status, body = await get(client, "order-17")
    assert status == 200
    assert (body["signed"], body["logged"], body["track"], body["chosen"], body["error"]) == (
        False,
        True,
        "stable",
        "canary",
        "connect",
    )
    status, body = await get(client, "order-18")
    assert status == 404 and body["error"]["param"] == "id"


async def test_a_forged_id_is_not_found(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    rid = sign(b"another-key", "abc0000000003", track_payload("chat", "canary", "v2"))
    await raw_redis.hset(Keys().decisions(slot_start(time.time())), "abc0000000003", decision())
    status, body = await get(client, rid)
    assert status == 404
    assert body["error"]["param"] == "id" and "signed" in body["errors"][0]["reason"]
    good = sign(KEY, "abc0000000003", track_payload("chat", "canary", "v2"))
    status, _ = await get(client, good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert status == 404


async def test_bad_input_names_the_field(client: TestClient[Any, Any]) -> None:
    status, body = await get(client, "x" * 513)
    assert status == 422 and body["error"]["param"] == "id"
    status, body = await get(client, "has%20space")
    assert status == 422 and body["error"]["param"] == "id"
    r = await client.get("/v1/requests/abc?verbose=1", headers=AUTH)
    assert r.status == 400 and (await r.json())["error"]["param"] == "verbose"
    r = await client.get("/v1/requests/abc")
    assert r.status == 401


async def test_no_signing_key_is_503(redis_server: RedisServer) -> None:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN)
    await app.start()
    try:
        async with TestClient(TestServer(app.web_app())) as c:
            r = await c.get("/v1/requests/a.b.c", headers=AUTH)
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "decision_log_not_configured"
    finally:
        await app.close()
