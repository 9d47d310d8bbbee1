"""The demo's feed: one line per audit record and rollout event, read live from Redis."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from config.keys import Keys
from config.schema import RoutingDocument
from config.tasks import stop
from control.redis_client import connect
from control.store import Change, DocumentStore
from splitgate.demo_feed import Feed, audit_line, clock, event_line, weights_text
from splitgate.redis_server import RedisServer

AT = time.mktime((2026, 11, 29, 17, 42, 3, 0, 0, -1))
ROUTE = {
    "name": "chat",
    "tracks": [
        {
            "name": "stable",
            "version": "v1.0.0",
            "upstreams": ["http://127.0.0.1:9001"],
            "weight": 80,
        },
        {
            "name": "canary",
            "version": "v1.1.0",
            "upstreams": ["http://127.0.0.1:9002"],
            "weight": 20,
        },
    ],
}


def record(**fields: Any) -> dict[str, Any]:
    return {
        "time": AT,
        "actor": "splitgate-rollout",
        "reason": "Phase 1: 20%",
        "action": "set_weights",
        "target": "routes/chat/weights",
        "generation": 14,
        "before": None,
        "after": None,
        **fields,
    }


def test_a_weight_change_names_route_weights_generation_and_who() -> None:
    assert clock(AT) == "17:42:03"
    assert weights_text({"tracks": [{"name": "a", "weight": 12.5}]}) == "a=12.5"
    assert audit_line(record(), ROUTE) == (
        "17:42:03  weights  chat  stable=80 canary=20  (gen 14, by splitgate-rollout: Phase 1: 20%)"
    )
    by_hand = audit_line(record(actor="admin", reason="", after=ROUTE))
    assert by_hand == "17:42:03  weights  chat  stable=80 canary=20  (gen 14, by admin)"
    assert "(weights superseded)" in audit_line(record())


def test_track_flag_and_other_changes() -> None:
    track = record(action="put_track", target="routes/chat/tracks/canary", reason="register v1.1.0")
    assert audit_line(track, ROUTE) == (
        "17:42:03  track    chat/canary  v1.1.0 at http://127.0.0.1:9002 weight 20  "
        "(gen 14, by splitgate-rollout: register v1.1.0)"
    )
    flag = record(action="put_flag", target="flags/new_prompt_v2", actor="admin", reason="beta")
    assert audit_line(flag) == "17:42:03  flag     new_prompt_v2  set  (gen 14, by admin: beta)"
    step = record(action="flag_schedule_step", target="flags/f", reason="step 1 of 2")
    assert "flag     f  schedule step  (gen 14" in audit_line(step)
    seed = record(action="seed", target="routes", actor="seeder", reason="seeded")
    assert audit_line(seed) == "17:42:03  change   routes  seed  (gen 14, by seeder: seeded)"


def test_rollout_events() -> None:
    event = {"rollout": "chat-1a2b3c4d", "kind": "phase", "detail": "Phase 2: 50%", "at": AT}
    assert event_line(event) == "17:42:03  rollout  chat-1a2b3c4d  phase  Phase 2: 50%"
    back = {**event, "kind": "rolled_back", "detail": "error rate vs baseline: 9/40 against 0/160"}
    assert event_line(back).endswith("rolled_back  error rate vs baseline: 9/40 against 0/160")
    assert event_line({**event, "kind": "paused", "detail": ""}).endswith("chat-1a2b3c4d  paused")


@pytest.fixture
async def redis(redis_server: RedisServer) -> Any:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


async def test_the_feed_prints_what_happens_after_it_starts(redis: Any) -> None:
    keys = Keys()
    store = DocumentStore(redis, keys)
    document = RoutingDocument.model_validate(
        {"routes": [{**ROUTE, "match": {"path_prefix": "/"}}]}
    )
    await store.write(document, 0, Change("seeder", "before the feed", "seed", "routes"))
    lines: list[str] = []
    feed = Feed(redis, keys, out=lines.append)
    task = asyncio.create_task(feed.run())
    await asyncio.sleep(0.3)  # the feed has taken the streams' newest ids
    route = document.routes[0]
    tracks = [t.model_copy(update={"weight": 50}) for t in route.tracks]
    moved = document.model_copy(update={"routes": [route.model_copy(update={"tracks": tracks})]})
    await store.write(
        moved, 1, Change("splitgate-rollout", "Phase 2", "set_weights", "routes/chat/weights")
    )
    event = {"rollout": "chat-1", "kind": "phase", "detail": "Phase 2: 50%", "at": time.time()}
    await redis.xadd(keys.events, {"event": json.dumps(event)})
    await redis.xadd(keys.events, {"something": "else"})  # not an event: skipped
    async with asyncio.timeout(10):
        while len(lines) < 2:  # noqa: ASYNC110 - polling the feed's output
            await asyncio.sleep(0.05)
    await stop(task)  # the cancellation repeated: redis-py may absorb one mid-read
    assert task.cancelled()
    assert not any("before the feed" in line for line in lines)
    assert lines[0].endswith(
        "weights  chat  stable=50 canary=50  (gen 2, by splitgate-rollout: Phase 2)"
    )
    assert lines[1].endswith("rollout  chat-1  phase  Phase 2: 50%")
    assert len(lines) == 2


async def test_a_redis_outage_is_logged_once_and_the_feed_goes_on(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(redis_server.url)
    lines: list[str] = []
    task = asyncio.create_task(Feed(client, Keys(), out=lines.append).run())
    try:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(redis_server.kill)
        await asyncio.sleep(2.5)  # several failed reads
        await asyncio.to_thread(redis_server.start)
        async with asyncio.timeout(15):
            while not lines:
                await client.xadd(
                    Keys().events, {"event": json.dumps({"rollout": "r", "kind": "k"})}
                )
                await asyncio.sleep(0.5)
    finally:
        await stop(task)
        assert task.cancelled()
        await client.aclose()
    warnings = [r for r in caplog.records if "cannot read Redis" in r.getMessage()]
    assert len(warnings) == 1
    assert "rollout  r  k" in lines[0]
