"""The flag admin API against a real Redis: bad input named field by field, the CRUD round
trip with its audit, If-Match, YAML bodies with line numbers, schedule commands (explain:
``test_flags_explain.py``)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from config.keys import Keys
from config.schema import RoutingDocument
from control.app import ControlApp
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
                "stickiness": ["header:x-user-id"],
                "baseline": "v1",
                "tracks": [
                    {
                        "name": "v1",
                        "version": "v1.0.0",
                        "upstreams": ["http://127.0.0.1:9001"],
                        "weight": 100,
                    },
                    {
                        "name": "v2",
                        "version": "v2.0.0",
                        "upstreams": ["http://127.0.0.1:9002"],
                        "weight": 0,
                    },
                ],
            }
        ],
        "segments": {"beta_users": {"conditions": [{"type": "user_group", "values": ["beta"]}]}},
    }
)

FLAG: dict[str, Any] = {
    "route": "chat",
    "track": "v2",
    "rollout_percentage": 100,
    "target_groups": ["beta_users"],
    "conditions": [{"type": "user_segment", "values": ["premium", "enterprise"]}],
    "override": {"enabled_for": ["user_123"], "disabled_for": ["user_789"]},
}

SCHEDULE: dict[str, Any] = {
    "schedule": [
        {"date": "2025-04-01", "percentage": 5, "target": "beta_users"},
        {"date": "2025-04-22", "percentage": 100, "target": "all_users", "action": "remove_flag"},
    ]
}


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    # The schedule runner must not step the dated flags here: test_schedule does that.
    app = ControlApp(
        connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05, rollout_interval_s=3600
    )
    await app.start()
    yield app
    await app.close()


def with_(path: str, value: Any) -> dict[str, Any]:
    """FLAG with one field (``a.b.0.c``) set."""
    body = copy.deepcopy(FLAG)
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return body


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            with_("conditions.0.operator", "contains"),
            "flag.conditions[0].operator",
            "unknown operator 'contains'",
        ),
        (with_("conditions.0.values", []), "flag.conditions[0].values", "empty audience"),
        (
            {"route": "chat", "track": "v2", "target_groups": []},
            "flag.target_groups",
            "empty audience",
        ),
        (with_("rollout_percentage", 150), "flag.rollout_percentage", "between 0 and 100"),
        (with_("rollout_percentage", -1), "flag.rollout_percentage", "between 0 and 100"),
        (with_("rollout_percentage", 2.345), "flag.rollout_percentage", "two decimals"),
        (
            with_("gradual_rollout", {"schedule": [{"date": "04/01/2025", "percentage": 5}]}),
            "flag.gradual_rollout.schedule[0].date",
            "is not a date: use YYYY-MM-DD",
        ),
        (
            with_("gradual_rollout", {"schedule": [{"date": "2025-02-30", "percentage": 5}]}),
            "flag.gradual_rollout.schedule[0].date",
            "is not a date",
        ),
        (
            with_(
                "gradual_rollout",
                {"schedule": [{"date": "2025-04-01", "percentage": 101}]},
            ),
            "flag.gradual_rollout.schedule[0].percentage",
            "between 0 and 100",
        ),
        (
            with_(
                "gradual_rollout",
                {"timezone": "Mars/Olympus", "schedule": [{"date": "2025-04-01", "percentage": 5}]},
            ),
            "flag.gradual_rollout.timezone",
            "unknown time zone",
        ),
        (with_("track", "v3"), "flag.track", "has no track 'v3'"),
        (with_("route", "search"), "flag.route", "no route named 'search'"),
        (with_("target_groups", ["nobody"]), "flag.target_groups[0]", "unknown segment"),
        (with_("colour", "red"), "flag.colour", "unknown field"),
        ([1, 2], "flag", "a JSON object"),
    ],
)
async def test_bad_flags_are_refused_naming_the_field(
    client: TestClient[Any, Any], raw_redis: Redis, body: Any, field: str, reason: str
) -> None:
    before = await stored(raw_redis)
    r = await client.put("/v1/flags/new_prompt_v2", json=body, headers=AUTH)
    assert r.status == 422
    answer = await r.json()
    assert answer["error"]["param"] == field, answer
    assert any(e["field"] == field and reason in e["reason"] for e in answer["errors"]), answer
    assert await stored(raw_redis) == before


async def test_bad_segments_attributes_and_patches(client: TestClient[Any, Any]) -> None:
    cases: list[tuple[str, str, Any, str]] = [
        ("PUT", "/v1/segments/empty", {"conditions": []}, "segment.conditions"),
        (
            "PUT",
            "/v1/segments/odd",
            {"conditions": [{"attribute": "tier", "operator": "like", "values": ["x"]}]},
            "segment.conditions[0].operator",
        ),
        ("PUT", "/v1/attributes", {"attributes": {"region": "bad header"}}, "attributes.region"),
        ("PUT", "/v1/attributes", {"region": "x-geo"}, "attributes"),
        ("PUT", "/v1/attributes", {"attributes": {}, "extra": 1}, "extra"),
    ]
    for method, path, body, field in cases:
        r = await client.request(method, path, json=body, headers=AUTH)
        assert r.status == 422, (path, body)
        assert (await r.json())["error"]["param"] == field, (path, body)
    await client.put("/v1/flags/f", json=FLAG, headers=AUTH)
    r = await client.patch("/v1/flags/f", json={"rollout_percentage": 100.5}, headers=AUTH)
    assert r.status == 422
    assert (await r.json())["error"]["param"] == "flag.rollout_percentage"
    r = await client.patch("/v1/flags/f", json={}, headers=AUTH)
    assert r.status == 422 and (await r.json())["error"]["param"] == "flag"


async def test_unknown_names_are_404(client: TestClient[Any, Any]) -> None:
    for method, path in [
        ("GET", "/v1/flags/ghost"),
        ("PATCH", "/v1/flags/ghost"),
        ("DELETE", "/v1/flags/ghost"),
        ("GET", "/v1/flags/ghost/schedule"),
        ("POST", "/v1/flags/ghost/schedule/pause"),
        ("GET", "/v1/segments/ghost"),
        ("DELETE", "/v1/segments/ghost"),
    ]:
        r = await client.request(method, path, json={"enabled": False}, headers=AUTH)
        assert r.status == 404, (method, path)
        assert (await r.json())["errors"][0]["field"] in ("flag", "segment"), (method, path)
    r = await client.post("/v1/flags/explain", json={"route": "search"}, headers=AUTH)
    assert r.status == 404 and (await r.json())["errors"][0]["field"] == "route"


async def test_crud_round_trip_is_audited(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    who = {**AUTH, "X-Splitgate-Actor": "alice"}
    r = await client.put("/v1/flags/new_prompt_v2", json={**FLAG, "reason": "beta"}, headers=who)
    assert r.status == 200, await r.text()
    created = await r.json()
    assert created["generation"] == 2 and r.headers["ETag"] == '"2"'
    assert created["flag"]["target_groups"] == ["beta_users"]
    got = await (await client.get("/v1/flags/new_prompt_v2", headers=AUTH)).json()
    assert got["flag"] == created["flag"]
    listed = await (await client.get("/v1/flags", headers=AUTH)).json()
    assert list(listed["flags"]) == ["new_prompt_v2"] and "beta_users" in listed["segments"]

    r = await client.patch(
        "/v1/flags/new_prompt_v2", json={"enabled": False, "reason": "incident 42"}, headers=who
    )
    assert r.status == 200 and (await r.json())["flag"]["enabled"] is False
    assert (await stored(raw_redis)).feature_flags["new_prompt_v2"].enabled is False
    r = await client.delete("/v1/flags/new_prompt_v2?reason=done", headers=who)
    assert r.status == 200 and (await r.json())["flag"] is None
    assert (await client.get("/v1/flags/new_prompt_v2", headers=AUTH)).status == 404
    assert "new_prompt_v2" not in (await stored(raw_redis)).feature_flags

    records = (await (await client.get("/v1/audit?limit=3", headers=AUTH)).json())["records"]
    assert [(r["action"], r["actor"], r["reason"], r["target"]) for r in records] == [
        ("delete_flag", "alice", "done", "flags/new_prompt_v2"),
        ("patch_flag", "alice", "incident 42", "flags/new_prompt_v2"),
        ("put_flag", "alice", "beta", "flags/new_prompt_v2"),
    ]
    assert records[0]["before"]["enabled"] is False and records[0]["after"] is None
    assert records[1]["before"]["enabled"] is True and records[1]["after"]["enabled"] is False
    assert records[2]["before"] is None


async def test_a_second_flag_is_evaluated_after_and_replacing_keeps_the_order(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    for name in ("first", "second"):
        assert (await client.put(f"/v1/flags/{name}", json=FLAG, headers=AUTH)).status == 200
    changed = with_("rollout_percentage", 10)
    assert (await client.put("/v1/flags/first", json=changed, headers=AUTH)).status == 200
    document = await stored(raw_redis)
    assert list(document.feature_flags) == ["first", "second"]
    assert document.feature_flags["first"].rollout_percentage == 10


async def test_if_match(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    r = await client.put("/v1/flags/f", json=FLAG, headers={**AUTH, "If-Match": '"7"'})
    assert r.status == 412 and (await r.json())["error"]["code"] == "stale_generation"
    assert (await stored(raw_redis)).generation == 1
    r = await client.put("/v1/flags/f", json=FLAG, headers={**AUTH, "If-Match": "x"})
    assert r.status == 400
    r = await client.put("/v1/flags/f", json=FLAG, headers={**AUTH, "If-Match": '"1"'})
    assert r.status == 200
    r = await client.delete("/v1/flags/f", headers={**AUTH, "If-Match": '"1"'})
    assert r.status == 412
    assert "f" in (await stored(raw_redis)).feature_flags


async def test_a_yaml_body_names_the_line(client: TestClient[Any, Any]) -> None:
    yaml_headers = {**AUTH, "Content-Type": "application/yaml"}
    text = """route: chat
track: v2
target_groups: [beta_users]
conditions:
  - attribute: region
    operator: contains
    values: [jp]
"""
    r = await client.put("/v1/flags/f", data=text, headers=yaml_headers)
    assert r.status == 422
    [e] = (await r.json())["errors"]
    assert e["field"] == "flag.conditions[0].operator"
    assert e["reason"].startswith("line 6: unknown operator 'contains'")
    r = await client.put("/v1/flags/f", data=text.replace("v2", "v9"), headers=yaml_headers)
    errors = (await r.json())["errors"]
    assert any(e["field"] == "flag.conditions[0].operator" for e in errors)
    r = await client.put(
        "/v1/flags/f", data=text.replace("contains", "in").replace("v2", "v9"), headers=yaml_headers
    )
    assert r.status == 422
    assert (await r.json())["errors"] == [
        {"field": "flag.track", "reason": "line 2: route 'chat' has no track 'v9'"}
    ]
    r = await client.put("/v1/flags/f", data="route: [chat", headers=yaml_headers)
    assert r.status == 422 and "not valid YAML" in (await r.json())["errors"][0]["reason"]
    r = await client.put(
        "/v1/flags/f?reason=from%20yaml",
        data=text.replace("contains", "in"),
        headers=yaml_headers,
    )
    assert r.status == 200
    records = (await (await client.get("/v1/audit?limit=1", headers=AUTH)).json())["records"]
    assert records[0]["reason"] == "from yaml"


async def explain(client: TestClient[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/flags/explain", json=body, headers=AUTH)
    assert r.status == 200, await r.text()
    answer: dict[str, Any] = await r.json()
    return answer


async def test_schedule_pause_resume_and_status(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    assert (await client.put("/v1/flags/plain", json=FLAG, headers=AUTH)).status == 200
    r = await client.post("/v1/flags/plain/schedule/pause", headers=AUTH)
    assert r.status == 409 and (await r.json())["errors"][0]["field"] == "flag.gradual_rollout"
    flag = {**FLAG, "gradual_rollout": SCHEDULE}
    assert (await client.put("/v1/flags/dated", json=flag, headers=AUTH)).status == 200
    r = await client.post(
        "/v1/flags/dated/schedule/pause", json={"reason": "waiting for legal"}, headers=AUTH
    )
    assert r.status == 200 and (await r.json())["flag"]["gradual_rollout"]["paused"] is True
    schedule = (await stored(raw_redis)).feature_flags["dated"].gradual_rollout
    assert schedule is not None and schedule.paused
    status = await (await client.get("/v1/flags/dated/schedule", headers=AUTH)).json()
    assert status["paused"] is True and status["applied"] == 0
    assert [s["state"] for s in status["steps"]] == ["due", "due"]
    assert status["steps"][1]["due_at"] == "2025-04-22T00:00:00+00:00"
    assert (await client.post("/v1/flags/dated/schedule/resume", headers=AUTH)).status == 200
    schedule = (await stored(raw_redis)).feature_flags["dated"].gradual_rollout
    assert schedule is not None and not schedule.paused
    records = (await (await client.get("/v1/audit?limit=2", headers=AUTH)).json())["records"]
    assert [(r["action"], r["reason"]) for r in records] == [
        ("resume_schedule", ""),
        ("pause_schedule", "waiting for legal"),
    ]
    r = await client.post("/v1/flags/dated/schedule/skip", headers=AUTH)
    assert r.status == 404 and (await r.json())["errors"][0]["field"] == "command"


async def test_a_schedule_whose_record_does_not_read_says_why(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    flag = {**FLAG, "gradual_rollout": SCHEDULE}
    assert (await client.put("/v1/flags/dated", json=flag, headers=AUTH)).status == 200
    await raw_redis.set(Keys().flag_schedule("dated"), '{"flag": "dated", "version": 1}')
    r = await client.get("/v1/flags/dated/schedule", headers=AUTH)
    assert r.status == 200
    status = await r.json()
    assert "created_at: Field required" in status["unreadable"]
    assert status["last"]["outcome"] == "unreadable" and status["applied"] == 0
    assert [s["state"] for s in status["steps"]] == ["unknown", "unknown"]


async def test_auth_and_openapi(client: TestClient[Any, Any]) -> None:
    for method, path in [
        ("GET", "/v1/flags"),
        ("PUT", "/v1/flags/f"),
        ("POST", "/v1/flags/explain"),
    ]:
        r = await client.request(method, path, json=FLAG)
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    spec = await (await client.get("/openapi.json", headers=AUTH)).json()
    for path in (
        "/v1/flags",
        "/v1/flags/{name}",
        "/v1/flags/explain",
        "/v1/flags/{name}/schedule",
        "/v1/flags/{name}/schedule/{command}",
        "/v1/segments/{name}",
        "/v1/attributes",
    ):
        assert path in spec["paths"], path


async def test_the_one_flag_file_of_the_docs_loads(client: TestClient[Any, Any]) -> None:
    """docs/FLAGS.md's walkthrough file, on this module's route (tracks v1 and v2)."""
    docs = (Path(__file__).parents[2] / "docs" / "FLAGS.md").read_text(encoding="utf-8")
    block = docs.split("<!-- flag-file -->\n```yaml\n", 1)[1].split("```", 1)[0]
    text = block.replace("track: canary", "track: v2")
    headers = {**AUTH, "Content-Type": "application/yaml"}
    r = await client.put("/v1/flags/premium_canary", data=text, headers=headers)
    assert r.status == 200, await r.text()
    r = await client.post(
        "/v1/flags/explain",
        json={"route": "chat", "headers": {"x-user-id": "alice"}},
        headers=AUTH,
    )
    explained = await r.json()
    assert (explained["track"], explained["flag"]) == ("v2", "premium_canary"), explained
    broken = text.replace("operator: in", "operator: near")
    r = await client.put("/v1/flags/premium_canary", data=broken, headers=headers)
    assert r.status == 422
    [e] = (await r.json())["errors"]
    assert (e["field"], e["reason"][:7]) == ("flag.conditions[0].operator", "line 7:")
