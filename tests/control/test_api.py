"""The admin API against a real Redis: every bad input gets its status and a clear JSON
error, and the stored document is unchanged afterwards."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from redis.asyncio import Redis

from config.feedback import sign, track_payload
from config.keys import Keys
from config.schema import RoutingDocument
from control.app import ControlApp
from control.openapi import OPENAPI
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.control.conftest import stored

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

SEED = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "match": {"path_prefix": "/v1/"},
                "tracks": [
                    {
                        "name": "stable",
                        "version": "v1",
                        "upstreams": ["http://127.0.0.1:9001"],
                        "weight": 95,
                    },
                    {
                        "name": "canary",
                        "version": "v2",
                        "upstreams": ["http://127.0.0.1:9002"],
                        "weight": 5,
                    },
                ],
            }
        ]
    }
)


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


CANARY = """canary_deployment:
  route: chat
  candidate: {track: canary, version: v9, upstreams: ["http://127.0.0.1:9"]}
  phases: [{name: all, traffic: 100}]
  checklist: {required: [tests_passed], recommended: [load_test]}
"""


async def test_rollout_plans_and_commands_refused_with_the_field_and_the_state(
    client: TestClient[Any, Any],
) -> None:
    bad = CANARY.replace("traffic: 100", "traffic: 140")
    r = await client.post("/v1/rollouts", data=bad, headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["errors"]
    assert problem["field"] == "canary_deployment.phases[0].traffic"
    assert problem["reason"].startswith("line 4: ")
    ab = "ab_testing: {route: chat, split: {stable: 50, nope: 50}, duration: 1h}\n"
    r = await client.post("/v1/rollouts", data=ab, headers=AUTH)
    assert r.status == 422
    assert (await r.json())["errors"] == [
        {"field": "ab_testing.split.nope", "reason": "route 'chat' has no track 'nope'"}
    ]
    assert (await client.get("/v1/rollouts", headers=AUTH)).status == 200
    assert (await (await client.get("/v1/rollouts", headers=AUTH)).json())["rollouts"] == []

    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 201, await r.text()
    rid = (await r.json())["id"]
    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 409 and rid in (await r.json())["error"]["message"]
    r = await client.post(f"/v1/rollouts/{rid}/approve", headers=AUTH)
    assert r.status == 409 and "pending" in (await r.json())["error"]["message"]
    r = await client.post(f"/v1/rollouts/{rid}/launch", headers=AUTH)
    assert r.status == 404
    r = await client.post(f"/v1/rollouts/{rid}/checks/changelog", headers=AUTH)
    assert r.status == 404
    assert "tests_passed, load_test" in (await r.json())["errors"][0]["reason"]
    r = await client.post(f"/v1/rollouts/{rid}/checks/tests_passed", data="{", headers=AUTH)
    assert r.status == 400
    r = await client.post(
        f"/v1/rollouts/{rid}/checks/tests_passed",
        json={"note": "CI run 7"},
        headers={**AUTH, "X-Splitgate-Actor": "ci-bot"},
    )
    assert r.status == 200
    done = (await r.json())["checklist"]["required"]["tests_passed"]
    assert (done["by"], done["note"]) == ("ci-bot", "CI run 7")
    r = await client.get(f"/v1/rollouts/{rid}/verdicts?limit=0", headers=AUTH)
    assert r.status == 400
    r = await client.get(f"/v1/rollouts/{rid}/verdicts", headers=AUTH)
    assert r.status == 200 and (await r.json())["looks"] == []
    r = await client.get(f"/v1/rollouts/{rid}", headers=AUTH)
    shown = await r.json()
    conforms(shown, "/v1/rollouts/{id}")
    assert shown["weights"] == {"stable": 95, "canary": 5}
    assert shown["warnings"] == ["recommended checklist item 'load_test' is not confirmed"]
    assert (await client.post(f"/v1/rollouts/{rid}/abort", headers=AUTH)).status == 200
    r = await client.get("/v1/rollouts", headers=AUTH)
    conforms(await r.json(), "/v1/rollouts")
    r = await client.post(f"/v1/rollouts/{rid}/checks/tests_passed", headers=AUTH)
    assert r.status == 409 and "aborted" in (await r.json())["error"]["message"]


async def test_a_rollout_is_refused_while_a_third_track_carries_traffic(
    client: TestClient[Any, Any],
) -> None:
    track = {"version": "v3", "upstreams": ["http://127.0.0.1:9003"], "weight": 0}
    r = await client.put("/v1/routes/chat/tracks/other", json=track, headers=AUTH)
    assert r.status == 200, await r.text()
    weights = {"weights": {"stable": 90, "canary": 5, "other": 5}}
    r = await client.put("/v1/routes/chat/weights", json=weights, headers=AUTH)
    assert r.status == 200, await r.text()
    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["errors"]
    assert problem["field"] == "route" and "'other' of route 'chat' has 5%" in problem["reason"]
    assert (await (await client.get("/v1/rollouts", headers=AUTH)).json())["rollouts"] == []


async def test_a_rollout_that_would_hand_production_to_the_older_baseline_is_refused(
    client: TestClient[Any, Any],
) -> None:
    # The candidate's track runs what most users get (a blue-green switch, or a promotion kept
    # on the candidate): registering a new version there would move them to the baseline.
    weights = {"weights": {"stable": 10, "canary": 90}}
    r = await client.put("/v1/routes/chat/weights", json=weights, headers=AUTH)
    assert r.status == 200, await r.text()
    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 422, await r.text()
    [problem] = (await r.json())["errors"]
    assert problem["field"] == "canary_deployment.candidate.track"
    assert "track 'canary' serves 90% of route 'chat' (v2)" in problem["reason"]
    assert (await (await client.get("/v1/rollouts", headers=AUTH)).json())["rollouts"] == []


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


def conforms(body: Any, path: str) -> None:
    """``body`` is what the OpenAPI document says GET ``path`` answers with 200."""
    schema = OPENAPI["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    validator = Draft202012Validator({**schema["schema"], "components": OPENAPI["components"]})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == []
