"""The admin API against a real Redis: every bad input gets its status and a clear JSON
error, and the stored document is unchanged afterwards."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from config.keys import Keys
from control.app import ControlApp
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN
from tests.control.conftest import stored


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield app
    await app.close()


async def test_seeded_from_the_config_file(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    r = await client.get("/v1/routes", headers=AUTH)
    assert r.status == 200
    body = await r.json()
    assert body["generation"] == 1
    assert [t["weight"] for t in body["routes"][0]["tracks"]] == [95, 5]
    assert (await stored(raw_redis)).routing() == SEED


async def test_set_weights_writes_a_new_generation_and_an_audit_record(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    r = await client.put(
        "/v1/routes/chat/weights",
        json={"weights": {"stable": 75, "canary": 25}, "reason": "phase 2"},
        headers={**AUTH, "X-Splitgate-Actor": "ci"},
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["generation"] == 2
    assert r.headers["ETag"] == '"2"'
    assert [t["weight"] for t in body["route"]["tracks"]] == [75, 25]
    doc = await stored(raw_redis)
    assert doc.generation == 2 and doc.written_by == "ci"
    records = (await (await client.get("/v1/audit?limit=5", headers=AUTH)).json())["records"]
    latest = records[0]
    assert (latest["actor"], latest["reason"], latest["action"], latest["generation"]) == (
        "ci",
        "phase 2",
        "set_weights",
        2,
    )
    assert [t["weight"] for t in latest["before"]["tracks"]] == [95, 5]
    assert [t["weight"] for t in latest["after"]["tracks"]] == [75, 25]
    assert records[-1]["action"] == "seed"


async def test_partial_weights_keep_the_other_tracks(client: TestClient[Any, Any]) -> None:
    await client.put(
        "/v1/routes/chat/tracks/shadow",
        json={"version": "v3", "upstreams": ["http://127.0.0.1:9003"], "weight": 0},
        headers=AUTH,
    )
    r = await client.put(
        "/v1/routes/chat/weights", json={"weights": {"stable": 90, "canary": 10}}, headers=AUTH
    )
    assert r.status == 200
    assert [(t["name"], t["weight"]) for t in (await r.json())["route"]["tracks"]] == [
        ("stable", 90),
        ("canary", 10),
        ("shadow", 0),
    ]


@pytest.mark.parametrize(
    ("body", "status", "field", "reason"),
    [
        ({"weights": {"stable": 75, "blue": 25}}, 422, "weights.blue", "has no track 'blue'"),
        ({"weights": {"stable": 105, "canary": -5}}, 422, "weights.stable", "between 0 and 100"),
        ({"weights": {"stable": -5, "canary": 105}}, 422, "weights.stable", "between 0 and 100"),
        ({"weights": {"stable": 80, "canary": 10}}, 422, "weights", "must add up to 100 (got 90"),
        (
            {"weights": {"stable": 74.999, "canary": 25.001}},
            422,
            "weights.stable",
            "at most two decimals",
        ),
        ({"weights": {"stable": "75", "canary": 25}}, 422, "weights.stable", "must be a number"),
        ({"weights": {"stable": True, "canary": 25}}, 422, "weights.stable", "must be a number"),
        ({"weights": {}}, 422, "weights", "an object of track name"),
        ({"weights": [75, 25]}, 422, "weights", "an object of track name"),
        ({"weigths": {"stable": 75}}, 422, "weights", "required"),
        ({"weights": {"stable": 100, "canary": 0}, "extra": 1}, 422, "extra", "unknown field"),
    ],
)
async def test_bad_weights_are_refused_and_change_nothing(
    client: TestClient[Any, Any], raw_redis: Redis, body: Any, status: int, field: str, reason: str
) -> None:
    before = await stored(raw_redis)
    r = await client.put("/v1/routes/chat/weights", json=body, headers=AUTH)
    assert r.status == status
    answer = await r.json()
    assert answer["error"]["param"] == field
    assert any(e["field"] == field and reason in e["reason"] for e in answer["errors"]), answer
    assert await stored(raw_redis) == before


async def test_malformed_requests(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    before = await stored(raw_redis)
    r = await client.put("/v1/routes/chat/weights", data=b"{not json", headers=AUTH)
    assert r.status == 400 and (await r.json())["errors"][0]["field"] == "body"
    r = await client.put("/v1/routes/nope/weights", json={"weights": {"a": 100}}, headers=AUTH)
    assert r.status == 404 and (await r.json())["errors"][0]["field"] == "route"
    r = await client.put(
        "/v1/routes/chat/weights", data=io.BytesIO(b"x" * (2 * 1024 * 1024)), headers=AUTH
    )
    assert r.status == 413
    assert await stored(raw_redis) == before


async def test_if_match(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    body = {"weights": {"stable": 80, "canary": 20}}
    r = await client.put("/v1/routes/chat/weights", json=body, headers={**AUTH, "If-Match": '"7"'})
    assert r.status == 412
    assert (await r.json())["error"]["code"] == "stale_generation"
    assert (await stored(raw_redis)).generation == 1
    r = await client.put("/v1/routes/chat/weights", json=body, headers={**AUTH, "If-Match": '"1"'})
    assert r.status == 200
    r = await client.put("/v1/routes/chat/weights", json=body, headers={**AUTH, "If-Match": "x"})
    assert r.status == 400


async def test_authentication(client: TestClient[Any, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = await client.get("/v1/routes", headers=headers)
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"
    r = await client.put("/v1/routes/chat/weights", json={"weights": {"stable": 0, "canary": 100}})
    assert r.status == 401
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/openapi.json")).status == 401
    spec = await (await client.get("/openapi.json", headers=AUTH)).json()
    assert spec["openapi"].startswith("3.") and "/v1/routes/{route}/weights" in spec["paths"]
    assert "/v1/rollouts/{id}/checks/{item}" in spec["paths"]


async def test_tracks_and_upstreams(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    track = {"version": "v3", "upstreams": ["http://127.0.0.1:9003"], "weight": 0}
    r = await client.put("/v1/routes/chat/tracks/blue", json=track, headers=AUTH)
    assert r.status == 200
    assert [t["name"] for t in (await r.json())["route"]["tracks"]] == ["stable", "canary", "blue"]
    r = await client.post(
        "/v1/routes/chat/tracks/blue/upstreams",
        json={"url": "https://b.example:8443"},
        headers=AUTH,
    )
    assert (await r.json())["route"]["tracks"][2]["upstreams"] == [
        "http://127.0.0.1:9003",
        "https://b.example:8443",
    ]
    r = await client.delete(
        "/v1/routes/chat/tracks/blue/upstreams",
        params={"url": "http://127.0.0.1:9003"},
        headers=AUTH,
    )
    assert (await r.json())["route"]["tracks"][2]["upstreams"] == ["https://b.example:8443"]
    r = await client.delete("/v1/routes/chat/tracks/blue", headers=AUTH)
    assert r.status == 200
    assert [t["name"] for t in (await r.json())["route"]["tracks"]] == ["stable", "canary"]
    assert (await stored(raw_redis)).generation == 5


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field", "reason"),
    [
        (
            "PUT",
            "/v1/routes/chat/tracks/blue",
            {"version": "v3", "upstreams": ["ftp://h:1"], "weight": 0},
            422,
            "track.upstreams[0]",
            "http:// or https://",
        ),
        (
            "PUT",
            "/v1/routes/chat/tracks/blue",
            {"version": "v3", "upstreams": ["http://h:1"], "weight": 10},
            422,
            "tracks",
            "must add up to 100",
        ),
        (
            "PUT",
            "/v1/routes/chat/tracks/blue",
            {"version": "v3", "upstreams": [], "weight": 0},
            422,
            "track.upstreams",
            "at least 1",
        ),
        (
            "PUT",
            "/v1/routes/chat/tracks/blue",
            {"version": "v3", "upstreams": ["http://h:1"], "weight": 0, "colour": "x"},
            422,
            "track.colour",
            "unknown field",
        ),
        (
            "PUT",
            "/v1/routes/chat/tracks/Bad Name",
            {"version": "v3", "upstreams": ["http://h:1"], "weight": 0},
            422,
            "track.name",
            "lower-case",
        ),
        ("DELETE", "/v1/routes/chat/tracks/canary", None, 422, "tracks", "must add up to 100"),
        ("DELETE", "/v1/routes/chat/tracks/nope", None, 404, "track", "has no track 'nope'"),
        (
            "POST",
            "/v1/routes/chat/tracks/canary/upstreams",
            {"url": "http://169.254.169.254@x"},
            422,
            "track.upstreams[1]",
            "credentials",
        ),
        (
            "POST",
            "/v1/routes/chat/tracks/canary/upstreams",
            {"url": "file:///etc/passwd"},
            422,
            "track.upstreams[1]",
            "http:// or https://",
        ),
        (
            "POST",
            "/v1/routes/chat/tracks/canary/upstreams",
            {"url": "http://127.0.0.1:9002"},
            422,
            "track.upstreams",
            "listed twice",
        ),
        ("POST", "/v1/routes/chat/tracks/canary/upstreams", {"url": 5}, 422, "url", "URL string"),
        (
            "DELETE",
            "/v1/routes/chat/tracks/canary/upstreams?url=http://127.0.0.1:9002",
            None,
            422,
            "track.upstreams",
            "at least 1",
        ),
        (
            "DELETE",
            "/v1/routes/chat/tracks/canary/upstreams?url=http://x:1",
            None,
            404,
            "url",
            "has no upstream",
        ),
    ],
)
async def test_bad_track_and_upstream_changes(
    client: TestClient[Any, Any],
    raw_redis: Redis,
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str,
    reason: str,
) -> None:
    before = await stored(raw_redis)
    r = await client.request(method, path, json=body, headers=AUTH)
    assert r.status == status, await r.text()
    answer = await r.json()
    assert any(e["field"] == field and reason in e["reason"] for e in answer["errors"]), answer
    assert await stored(raw_redis) == before


async def test_empty_redis_is_reseeded_from_the_last_known_document(
    control: ControlApp, client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    r = await client.put(
        "/v1/routes/chat/weights", json={"weights": {"stable": 60, "canary": 40}}, headers=AUTH
    )
    assert r.status == 200
    await control.ensure_seeded()  # the guardian has seen generation 2
    await raw_redis.flushall()
    await raw_redis.set(Keys().ack("proxy-a"), '{"generation": 9, "applied_at": 0}')
    reseeded = await control.ensure_seeded()
    assert reseeded.generation == 10  # above anything the fleet applied
    assert [t.weight for t in reseeded.routes[0].tracks] == [60, 40]  # never the file, never zero
    records = (await (await client.get("/v1/audit", headers=AUTH)).json())["records"]
    assert records[0]["action"] == "seed" and "last known document" in records[0]["reason"]


async def test_redis_down_answers_503(
    control: ControlApp, client: TestClient[Any, Any], redis_server: RedisServer
) -> None:
    redis_server.kill()
    r = await client.get("/v1/routes", headers=AUTH)
    assert r.status == 503
    assert (await r.json())["error"]["code"] == "redis_unavailable"


async def test_an_unknown_query_parameter_is_refused_naming_it(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    """A typo in a parameter is a 400 naming it, never silently the default."""
    r = await client.get("/v1/routes/chat/metrics?windw=5m", headers=AUTH)
    assert r.status == 400
    body = await r.json()
    assert body["error"]["code"] == "unknown_parameter"
    assert [e["field"] for e in body["errors"]] == ["windw"]
    before = await stored(raw_redis)
    r = await client.delete("/v1/routes/chat/tracks/canary?reasn=typo", headers=AUTH)
    assert r.status == 400 and (await r.json())["errors"][0]["field"] == "reasn"
    assert await stored(raw_redis) == before
    # The documented ones still work.
    r = await client.get("/v1/routes/chat/metrics?window=5m", headers=AUTH)
    assert r.status == 200


async def test_a_method_a_path_does_not_take_is_405_naming_those_it_does(
    client: TestClient[Any, Any],
) -> None:
    r = await client.post("/v1/rollouts/chat-1a2b3c4d/verdicts", headers=AUTH)
    assert r.status == 405 and r.headers["Allow"] == "GET,HEAD"
    assert (await r.json())["error"]["code"] == "method_not_allowed"
