"""Verdicts on shadow pairs through the admin API's ``POST /v1/feedback``, against a real
Redis: counted once in the shadow's window fields, the same verdict again accepted and not
counted, a different one refused, and ids that are not a pair's refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from redis.asyncio import Redis

from config.feedback import pair_payload, sign, track_payload
from config.keys import Keys
from config.metrics import WINDOW_S, merge_windows, shadow_arm, shadow_field_name, window_start
from control.app import ControlApp
from control.openapi import OPENAPI
from control.redis_client import connect
from control.shadow_pairs import JUDGED_TTL_S
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN

KEY = b"verdict-signing-key"
RESPONSES = OPENAPI["paths"]["/v1/feedback"]["post"]["responses"]

ISSUED = int(time.time())
"""When the test pairs' ids were issued."""


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, signing_key=KEY)
    await app.start()
    yield app
    await app.close()


def pair_id(nonce: str = "pairnonce0001", track: str = "canary", version: str = "v2") -> str:
    return sign(KEY, nonce, pair_payload("chat", track, version, ISSUED))


async def post(client: TestClient[Any, Any], **body: Any) -> tuple[int, Any]:
    r = await client.post("/v1/feedback", json=body, headers=AUTH)
    answer = await r.json()
    assert str(r.status) in RESPONSES, r.status
    if r.status < 300:
        Draft202012Validator(
            RESPONSES[str(r.status)]["content"]["application/json"]["schema"]
        ).validate(answer)
    return r.status, answer


async def windows(redis: Redis, route: str = "chat") -> list[dict[str, str]]:
    """Every metric window of the route that holds anything."""
    keys = [k async for k in redis.scan_iter(match=f"{Keys().metrics_window(route, 0)[:-1]}*")]
    return [{str(f): str(v) for f, v in (await redis.hgetall(k)).items()} for k in keys]


async def counted(redis: Redis, field: str) -> int:
    return sum(int(w.get(field, 0)) for w in await windows(redis))


async def test_a_verdict_is_counted_once_for_the_shadows_track(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    pid = pair_id()
    status, answer = await post(client, request_id=pid, shadow_verdict="better")
    assert (status, answer) == (
        202,
        {
            "accepted": True,
            "counted": True,
            "route": "chat",
            "track": "canary",
            "version": "v2",
            "shadow_verdict": "better",
        },
    )
    field = shadow_field_name("canary", "v2", "fb:shadow_better")
    assert await counted(raw_redis, field) == 1
    again = await post(client, request_id=pid, shadow_verdict="better")
    assert again == (200, {**answer, "counted": False})
    assert await counted(raw_redis, field) == 1
    # The shadow arm reads it; the live tracks' totals do not.
    merged = merge_windows(await windows(raw_redis), shadow=True)
    arm = merged[(shadow_arm("canary"), "v2")]
    assert arm.feedback == {"shadow_better": 1}
    assert arm.summary()["shadow_win_rate"] == 1.0 and arm.summary()["shadow_judged"] == 1
    assert merge_windows(await windows(raw_redis)) == {}


async def test_a_different_verdict_on_a_judged_pair_is_409(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    pid = pair_id()
    assert (await post(client, request_id=pid, shadow_verdict="same"))[0] == 202
    status, answer = await post(client, request_id=pid, shadow_verdict="worse")
    assert status == 409 and answer["errors"][0]["field"] == "shadow_verdict"
    assert "'same'" in answer["errors"][0]["reason"]
    assert await counted(raw_redis, shadow_field_name("canary", "v2", "fb:shadow_worse")) == 0
    assert await counted(raw_redis, shadow_field_name("canary", "v2", "fb:shadow_same")) == 1


async def test_the_verdict_is_remembered_as_long_as_a_pair_may_live(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    await post(client, request_id=pair_id("pairnonce0002"), shadow_verdict="worse")
    key = Keys().shadow_judged("pairnonce0002")
    assert await raw_redis.get(key) == "worse"
    assert JUDGED_TTL_S - 60 < await raw_redis.ttl(key) <= JUDGED_TTL_S


async def test_two_verdicts_at_once_count_one(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    pid = pair_id("pairnonce0003")
    results = await asyncio.gather(
        *(post(client, request_id=pid, shadow_verdict=v) for v in ("better", "worse", "same"))
    )
    assert sorted(status for status, _ in results) == [202, 409, 409]
    total = 0
    for verdict in ("better", "worse", "same"):
        total += await counted(raw_redis, shadow_field_name("canary", "v2", f"fb:shadow_{verdict}"))
    assert total == 1


async def test_verdicts_on_other_pairs_count_apart(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    for n, verdict in enumerate(("better", "same", "same", "worse")):
        assert (await post(client, request_id=pair_id(f"n{n}"), shadow_verdict=verdict))[0] == 202
    arm = merge_windows(await windows(raw_redis), shadow=True)[(shadow_arm("canary"), "v2")]
    assert arm.feedback == {"shadow_better": 1, "shadow_same": 2, "shadow_worse": 1}
    assert arm.summary()["shadow_win_rate"] == 0.5


async def test_a_verdict_not_counted_can_be_sent_again(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    """The window's write fails (its key holds a string): the verdict is taken back, so the
    judge's retry counts it."""
    now = time.time()
    blocked = [Keys().metrics_window("chat", window_start(now) + i * WINDOW_S) for i in (0, 1)]
    for key in blocked:
        await raw_redis.set(key, "not a hash")
    pid = pair_id("pairnonce0004")
    status, answer = await post(client, request_id=pid, shadow_verdict="better")
    assert status == 503, answer
    assert await raw_redis.get(Keys().shadow_judged("pairnonce0004")) is None
    await raw_redis.delete(*blocked)
    assert (await post(client, request_id=pid, shadow_verdict="better"))[0] == 202
    assert await counted(raw_redis, shadow_field_name("canary", "v2", "fb:shadow_better")) == 1


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (
            {"request_id": sign(KEY, "n1", track_payload("chat", "canary", "v2"))},
            "request_id",
            "not a shadow pair id (a live answer's id",
        ),
        ({"request_id": pair_id()[:-1] + "x"}, "request_id", "not a shadow pair id (forged"),
        (
            {
                "request_id": sign(
                    b"another-key", "n1", pair_payload("chat", "canary", "v2", ISSUED)
                )
            },
            "request_id",
            "forged",
        ),
        ({"request_id": "no-dots-at-all"}, "request_id", "not a shadow pair id"),
        ({"request_id": pair_id(), "shadow_verdict": "great"}, "shadow_verdict", ""),
    ],
)
async def test_only_a_genuine_pair_id_takes_a_verdict(
    client: TestClient[Any, Any], raw_redis: Redis, body: dict[str, Any], field: str, says: str
) -> None:
    status, answer = await post(client, **{"shadow_verdict": "better", **body})
    assert status == 422 and answer["errors"][0]["field"] == field, answer
    assert says in answer["errors"][0]["reason"]
    assert await windows(raw_redis) == []


async def test_a_pair_id_takes_no_live_feedback(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    status, answer = await post(client, request_id=pair_id(), rating=5)
    assert status == 422 and answer["errors"][0]["field"] == "request_id"
    assert "shadow pair" in answer["errors"][0]["reason"]
    status, answer = await post(client, request_id=pair_id(), rating=5, shadow_verdict="same")
    assert status == 422 and "shadow_verdict" in answer["errors"][0]["reason"]
    assert await windows(raw_redis) == []


async def test_live_feedback_still_counts_for_the_answering_track(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    rid = sign(KEY, "n1", track_payload("chat", "stable", "v1"))
    status, answer = await post(client, request_id=rid, rating=4)
    assert status == 202 and "counted" not in answer
    assert merge_windows(await windows(raw_redis))[("stable", "v1")].feedback["rating_n"] == 1


async def test_a_pair_older_than_verdicts_are_remembered_is_refused(
    client: TestClient[Any, Any], raw_redis: Redis
) -> None:
    old = sign(KEY, "oldnonce", pair_payload("chat", "canary", "v2", ISSUED - 31 * 86_400))
    status, answer = await post(client, request_id=old, shadow_verdict="better")
    assert status == 422
    assert answer["errors"][0]["field"] == "request_id"
    assert "older than 30 days" in answer["errors"][0]["reason"]
    assert await raw_redis.keys("{splitgate}:shadow:judged:*") == []
