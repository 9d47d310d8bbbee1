"""``GET /v1/routes/{route}/shadow/pairs`` against a real Redis, the pairs written as the proxy
stores them (a stream entry per pair, its JSON under ``pair``): newest first, a page at a
time, unreadable entries skipped and counted, bad input refused."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from redis.asyncio import Redis

from config.feedback import pair_payload, sign
from config.keys import Keys
from config.shadow import PAIR_FIELD, PairSide, ShadowPair
from control.app import ControlApp
from control.openapi import OPENAPI
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN

KEY = b"shadow-signing-key"
PATH = "/v1/routes/chat/shadow/pairs"
ANSWER = Draft202012Validator(
    {
        **OPENAPI["paths"]["/v1/routes/{route}/shadow/pairs"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"],
        "components": OPENAPI["components"],
    }
)

ISSUED = int(time.time())
"""When the test pairs' ids were issued."""


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, signing_key=KEY)
    await app.start()
    yield app
    await app.close()


def pair(n: int, **shadow: Any) -> ShadowPair:
    """The ``n``-th mirrored request of route chat: stable answered, canary shadowed."""
    return ShadowPair(
        request_id=f"req-{n}",
        pair_id=sign(KEY, f"nonce{n:06d}", pair_payload("chat", "canary", "v2", ISSUED)),
        route="chat",
        at=1_750_000_000.0 + n,
        stored_text=False,
        primary=PairSide(
            track="stable",
            version="v1",
            status=200,
            latency_ms=100.0 + n,
            finish_reason="stop",
            text_chars=10 + n,
        ),
        shadow=PairSide(
            **{
                "track": "canary",
                "version": "v2",
                "status": 200,
                "latency_ms": 150.0,
                "finish_reason": "length",
                "text_chars": 20,
                **shadow,
            }
        ),
    )


async def store(redis: Redis, pairs: Sequence[ShadowPair | str], route: str = "chat") -> list[str]:
    """XADD each pair as the proxy does (a string: stored as it is); the entries' ids."""
    ids = []
    for p in pairs:
        raw = p if isinstance(p, str) else p.model_dump_json(exclude={"id"})
        ids.append(str(await redis.xadd(Keys().shadow_pairs(route), {PAIR_FIELD: raw})))
    return ids


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def get(client: TestClient[Any, Any], path: str = PATH, **query: str) -> tuple[int, Any]:
    r = await client.get(path, params=query, headers=AUTH)
    body = _strict(await r.text())
    if r.status == 200:
        ANSWER.validate(body)
    return r.status, body


async def test_pairs_are_listed_newest_first_with_their_ids(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    ids = await store(raw_redis, [pair(1), pair(2), pair(3)])
    status, body = await get(client)
    assert status == 200
    assert body["route"] == "chat" and body["next"] is None and body["unreadable"] == 0
    assert [p["id"] for p in body["pairs"]] == ids[::-1]
    assert [p["request_id"] for p in body["pairs"]] == ["req-3", "req-2", "req-1"]
    assert ShadowPair.model_validate(body["pairs"][0]) == pair(3).model_copy(update={"id": ids[2]})


async def test_a_route_without_pairs_has_an_empty_list(client: TestClient[Any, Any]) -> None:
    assert await get(client) == (
        200,
        {"route": "chat", "pairs": [], "unreadable": 0, "next": None},
    )


async def test_pages_follow_each_other_with_before(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    ids = await store(raw_redis, [pair(n) for n in range(5)])
    seen: list[str] = []
    pages = []
    before: dict[str, str] = {}
    while True:
        status, body = await get(client, limit="2", **before)
        assert status == 200 and len(body["pairs"]) <= 2
        pages.append(len(body["pairs"]))
        seen.extend(p["id"] for p in body["pairs"])
        if body["next"] is None:
            break
        assert body["next"] == seen[-1]
        before = {"before": body["next"]}
    assert seen == ids[::-1] and pages == [2, 2, 1]


async def test_a_page_that_reaches_the_oldest_says_so(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    ids = await store(raw_redis, [pair(n) for n in range(4)])
    _, first = await get(client, limit="2")
    _, last = await get(client, limit="2", before=first["next"])
    # Exactly the last two: no empty page to fetch after them.
    assert [p["id"] for p in last["pairs"]] == [ids[1], ids[0]] and last["next"] is None
    for oldest in (ids[0], "0-0", "0-1"):
        _, beyond = await get(client, before=oldest)
        assert beyond["pairs"] == [] and beyond["next"] is None
    _, everything = await get(client, before="18446744073709551615-18446744073709551615")
    assert len(everything["pairs"]) == 4


async def test_unreadable_entries_are_skipped_and_counted(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    ids = await store(raw_redis, [pair(1), "{not json", pair(2), '{"request_id": "x"}', pair(3)])
    await raw_redis.xadd(Keys().shadow_pairs("chat"), {"other": "field"})
    status, body = await get(client)
    assert status == 200 and body["unreadable"] == 3
    assert [p["id"] for p in body["pairs"]] == [ids[4], ids[2], ids[0]]
    # A page's limit counts entries: the unreadable ones are in the span they skip.
    _, page = await get(client, limit="3")
    assert [p["request_id"] for p in page["pairs"]] == ["req-3"] and page["unreadable"] == 2
    assert page["next"] == ids[3]


async def test_a_non_finite_figure_is_answered_as_null(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    raw = pair(1).model_dump_json(exclude={"id"}).replace('"latency_ms":150.0', '"latency_ms":NaN')
    assert "NaN" in raw
    await store(raw_redis, [raw])
    status, body = await get(client)  # parsed strictly: NaN would fail
    assert status == 200 and body["pairs"][0]["shadow"]["latency_ms"] is None


async def test_an_unknown_route_is_404_naming_it(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    await store(raw_redis, [pair(1)], route="gone")
    status, body = await get(client, "/v1/routes/gone/shadow/pairs")
    assert status == 404
    assert body["error"]["param"] == "route" and "'gone'" in body["errors"][0]["reason"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"before": "yesterday"}, "before"),
        ({"before": "1-2-3"}, "before"),
        ({"before": "1718000000000"}, "before"),  # ids are listed whole
        ({"before": "18446744073709551616-0"}, "before"),  # more than Redis takes
        ({"before": "0-18446744073709551616"}, "before"),
        ({"after": "0-0"}, "after"),
    ],
)
async def test_bad_parameters_are_400_naming_the_field(
    client: TestClient[Any, Any], query: dict[str, str], field: str
) -> None:
    status, body = await get(client, **query)
    assert status == 400 and body["errors"][0]["field"] == field, body


async def test_the_limits_edges_are_taken(client: TestClient[Any, Any], raw_redis: Redis) -> None:
    await store(raw_redis, [pair(1), pair(2)])
    _, one = await get(client, limit="1")
    _, most = await get(client, limit="1000")
    assert (len(one["pairs"]), len(most["pairs"])) == (1, 2)


async def test_the_token_is_needed(client: TestClient[Any, Any]) -> None:
    r = await client.get(PATH)
    assert r.status == 401


async def test_put_and_delete_set_and_end_the_routes_mirroring(
    client: TestClient[Any, Any],
) -> None:
    r = await client.put(
        "/v1/routes/chat/shadow",
        json={"track": "canary", "percent": 12.5, "max_in_flight": 4, "reason": "try v2"},
        headers=AUTH,
    )
    assert r.status == 200, await r.text()
    shadow = (await r.json())["route"]["shadow"]
    assert (shadow["track"], shadow["percent"], shadow["max_in_flight"]) == ("canary", 12.5, 4)
    assert shadow["store_text"] is False  # left out: the default
    records = (await (await client.get("/v1/audit?limit=1", headers=AUTH)).json())["records"]
    assert (records[0]["action"], records[0]["reason"]) == ("set_shadow", "try v2")
    r = await client.delete("/v1/routes/chat/shadow?reason=done", headers=AUTH)
    assert r.status == 200
    assert "shadow" not in (await r.json())["route"]
    r = await client.get("/v1/routes/chat", headers=AUTH)
    assert "shadow" not in (await r.json())["route"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"track": "stable", "percent": 10}, "shadow.track", "is the baseline"),
        ({"track": "nope", "percent": 10}, "shadow.track", "not one of this route's tracks"),
        ({"track": "canary", "percent": 101}, "shadow.percent", "less than or equal to 100"),
        ({"track": "canary", "percent": 10, "max_in_flight": 0}, "shadow.max_in_flight", ""),
        ({"track": "canary", "percent": 10, "timeout": "soon"}, "shadow.timeout", ""),
        ({"track": "canary", "percent": 10, "colour": "red"}, "shadow.colour", ""),
        ({"percent": 10}, "shadow.track", "required"),
        ({"track": "canary", "percent": 10.001}, "shadow.percent", "two decimals"),
        ({"track": "canary", "percent": 10, "timeout": 0}, "shadow.timeout", "greater than 0"),
        ({"track": "canary", "percent": 10, "pairs_ttl": "10s"}, "shadow.pairs_ttl", "1 minute"),
        ([1, 2], "shadow", "an object"),
    ],
)
async def test_a_bad_shadow_names_the_field_and_changes_nothing(
    client: TestClient[Any, Any], body: Any, field: str, reason: str
) -> None:
    before = await (await client.get("/v1/routes/chat", headers=AUTH)).json()
    r = await client.put("/v1/routes/chat/shadow", json=body, headers=AUTH)
    assert r.status == 422, await r.text()
    errors = (await r.json())["errors"]
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors
    after = await (await client.get("/v1/routes/chat", headers=AUTH)).json()
    assert after["generation"] == before["generation"]


async def test_mirroring_an_unknown_route_is_404(client: TestClient[Any, Any]) -> None:
    r = await client.put("/v1/routes/nope/shadow", json={"track": "a", "percent": 1}, headers=AUTH)
    assert r.status == 404
