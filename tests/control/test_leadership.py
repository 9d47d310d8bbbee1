"""One leader at a time, and a former leader's writes fenced off, against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from config.keys import Keys
from config.schema import RoutingDocument
from control.edits import set_weights
from control.leadership import Leadership
from control.store import Change, DocumentStore, Fenced
from splitgate.redis_server import RedisServer

DOC = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "tracks": [
                    {"name": "stable", "version": "1", "upstreams": ["http://a:1"], "weight": 90},
                    {"name": "canary", "version": "2", "upstreams": ["http://b:1"], "weight": 10},
                ],
            }
        ]
    }
)
CHANGE = Change("runner", "", "set_weights", "routes/chat/weights")


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


async def test_one_leader_and_a_paused_one_is_fenced(redis: Redis) -> None:
    a = Leadership(redis, Keys(), "a", lease_s=0.3)
    b = Leadership(redis, Keys(), "b", lease_s=0.3)
    assert await a.try_lead() and a.epoch == 1
    assert not await b.try_lead()
    store = DocumentStore(redis, Keys())
    first = await store.write(DOC, 0, CHANGE, epoch=a.epoch)
    stale_epoch = a.epoch
    await asyncio.sleep(0.5)  # a is "paused" past its lease
    assert await b.try_lead() and b.epoch == 2
    newer = set_weights(first.routing(), "chat", {"stable": 50, "canary": 50})
    second = await store.write(newer, first.generation, CHANGE, epoch=b.epoch)
    # a wakes up still believing it leads: its write with the old epoch is refused.
    older = set_weights(second.routing(), "chat", {"stable": 100, "canary": 0})
    with pytest.raises(Fenced):
        await store.write(older, second.generation, CHANGE, epoch=stale_epoch)
    assert not await a.try_lead()  # and its renewal fails: it steps down
    assert not a.leading
    stored = await store.read()
    assert stored is not None and [t.weight for t in stored.routes[0].tracks] == [50, 50]


async def test_the_leader_keeps_its_lease_by_renewing(redis: Redis) -> None:
    a = Leadership(redis, Keys(), "a", lease_s=0.3)
    b = Leadership(redis, Keys(), "b", lease_s=0.3)
    assert await a.try_lead()
    for _ in range(5):
        await asyncio.sleep(0.1)
        assert await a.try_lead()
        assert not await b.try_lead()
    assert a.epoch == 1
