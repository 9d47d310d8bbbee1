"""``POST /v1/flags/explain`` against a real Redis: which track a request would get and why,
from its headers or, for a ``conversation`` stickiness source, from its body."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from config.schema import RoutingDocument
from control.app import ControlApp
from control.flags_api import EXPLAIN_BODY_BYTES
from control.store import Change
from tests.control.conftest import stored
from tests.control.test_flags_api import AUTH, SEED, control, explain, with_

__all__ = ["control"]  # the fixture, from the flags API's tests


async def test_explain_says_which_track_and_why(client: TestClient[Any, Any]) -> None:
    flag = {**with_("rollout_percentage", 50), "target_groups": []}
    assert (await client.put("/v1/flags/new_prompt_v2", json=flag, headers=AUTH)).status == 200
    allowed = await explain(
        client, {"route": "chat", "headers": {"x-user-id": "user_123", "x-user-segment": "free"}}
    )
    assert (allowed["track"], allowed["flag"], allowed["rule"]) == (
        "v2",
        "new_prompt_v2",
        "enabled_for",
    )
    assert "override.enabled_for" in allowed["reason"]
    denied = await explain(
        client,
        {"route": "chat", "user_id": "user_789", "attributes": {"user_segment": "premium"}},
    )
    assert (denied["track"], denied["flag"], denied["rule"]) == ("v1", None, "weights")
    assert denied["flags"][0]["outcome"] == "denied"
    outcomes = set()
    for i in range(40):
        answer = await explain(
            client,
            {"route": "chat", "headers": {"x-user-id": f"u{i}", "x-user-segment": "premium"}},
        )
        outcomes.add(answer["flags"][0]["outcome"])
        if answer["flags"][0]["outcome"] == "released":
            assert (answer["track"], answer["rule"]) == ("v2", "rollout")
            assert answer["bucket"] < 5000
        else:
            assert (answer["track"], answer["rule"]) == ("v1", "weights")
    assert outcomes == {"released", "held_out"}
    outside = await explain(client, {"route": "chat", "headers": {"x-user-id": "u1"}})
    assert outside["flags"][0]["outcome"] == "not_in_audience" and outside["track"] == "v1"
    anonymous = await explain(client, {"route": "chat", "headers": {"x-user-segment": "premium"}})
    assert anonymous["rule"] == "random" and anonymous["track"] is None
    for body, field in [
        ({"headers": {}}, "route"),
        ({"route": "chat", "headers": ["x"]}, "headers"),
        ({"route": "chat", "attributes": {"region": 3}}, "attributes"),
        ({"route": "chat", "user_id": 5}, "user_id"),
        ({"route": "chat", "user": "x"}, "user"),
    ]:
        r = await client.post("/v1/flags/explain", json=body, headers=AUTH)
        assert r.status == 422 and (await r.json())["error"]["param"] == field, body


async def test_explain_reads_a_conversation_from_the_body(
    client: TestClient[Any, Any], control: ControlApp
) -> None:
    document = await control.store.read()
    assert document is not None
    edited = SEED.model_dump()
    edited["routes"][0]["stickiness"] = ["header:x-user-id", "conversation"]
    replaced = RoutingDocument.model_validate(edited)
    await control.store.write(
        replaced, document.generation, Change("test", "", "set", "routes/chat/stickiness")
    )
    flag = {
        "route": "chat",
        "track": "v2",
        "rollout_percentage": 50,
        "target_groups": ["all_users"],
    }
    r = await client.put("/v1/flags/half", json=flag, headers=AUTH)
    assert r.status == 200, await r.text()
    opening = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Plan a trip to Kyoto"}]},
    ]
    first = {"model": "m", "messages": opening}
    later = {
        "model": "m",
        "messages": [
            *opening,
            {"role": "assistant", "content": "Three days?"},
            {"role": "user", "content": "Yes"},
        ],
    }
    answers = [
        await explain(client, {"route": "chat", "body": first}),
        await explain(client, {"route": "chat", "body": later}),
        await explain(client, {"route": "chat", "body": json.dumps(later)}),
    ]
    decided = {(a["bucket"], a["track"], a["rule"]) for a in answers}
    assert len(decided) == 1, answers
    assert answers[0]["rule"] != "random" and answers[0]["bucket"] is not None
    anonymous = await explain(client, {"route": "chat"})
    assert anonymous["rule"] == "random"
    for body in [5, ["x"], True, "x" * (EXPLAIN_BODY_BYTES + 1)]:
        r = await client.post(
            "/v1/flags/explain", json={"route": "chat", "body": body}, headers=AUTH
        )
        assert r.status == 422, body
        assert (await r.json())["error"]["param"] == "body", body


async def test_segments_and_attributes(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    segment = {"conditions": [{"attribute": "region", "values": ["jp", "us"]}], "reason": "go"}
    r = await client.put("/v1/segments/jp_us", json=segment, headers=AUTH)
    assert r.status == 200 and (await r.json())["segment"]["conditions"][0]["values"] == [
        "jp",
        "us",
    ]
    got = await (await client.get("/v1/segments/jp_us", headers=AUTH)).json()
    assert got["segment"]["conditions"][0]["attribute"] == "region"
    flag = with_("target_groups", ["jp_us"])
    assert (await client.put("/v1/flags/f", json=flag, headers=AUTH)).status == 200
    r = await client.delete("/v1/segments/jp_us", headers=AUTH)
    assert r.status == 409 and "used by flag 'f'" in (await r.json())["errors"][0]["reason"]
    r = await client.put("/v1/attributes", json={"attributes": {"region": "x-geo"}}, headers=AUTH)
    assert r.status == 200 and (await r.json())["attributes"] == {"region": "x-geo"}
    answer = await explain(client, {"route": "chat", "headers": {"X-Geo": "jp", "x-user-id": "u1"}})
    assert (answer["track"], answer["flag"], answer["attributes"]) == ("v2", "f", {"region": "jp"})
    assert (await client.delete("/v1/flags/f", headers=AUTH)).status == 200
    assert (await client.delete("/v1/segments/jp_us", headers=AUTH)).status == 200
    assert "jp_us" not in (await stored(raw_redis)).segments
