"""One compare-and-set script for every versioned record: version, fencing, events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from config.keys import Keys
from control.leadership import PASS_EPOCH
from control.store import Fenced
from control.versioned import VersionChanged, VersionedStore
from splitgate.redis_server import RedisServer


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)
    flag: str
    version: int
    note: str = ""


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_save_needs_the_version_it_read(redis: Redis) -> None:
    keys = Keys("t")
    store = VersionedStore[Record](redis, keys)
    key = keys.flag_schedule("beta")
    mine = Record(flag="beta", version=0)
    saved = await store.save(key, mine)
    assert (saved.version, mine.version) == (1, 0)
    with pytest.raises(VersionChanged):
        await store.save(key, mine)  # read at version 0, stored is 1 now
    assert json.loads(await redis.get(key) or "")["version"] == 1


async def test_a_save_in_a_deposed_leaders_pass_is_fenced(redis: Redis) -> None:
    keys = Keys("t")
    store = VersionedStore[Record](redis, keys)
    key = keys.flag_schedule("beta")
    record = await store.save(key, Record(flag="beta", version=0, note="before"))
    await redis.set(keys.epoch, 9)
    token = PASS_EPOCH.set(8)
    try:
        with pytest.raises(Fenced):
            await store.save(key, record.model_copy(update={"note": "deposed"}))
    finally:
        PASS_EPOCH.reset(token)
    assert json.loads(await redis.get(key) or "")["note"] == "before"
    token = PASS_EPOCH.set(9)
    try:
        await store.save(
            key, record.model_copy(update={"note": "leader"}), events=['{"kind": "x"}']
        )
    finally:
        PASS_EPOCH.reset(token)
    assert json.loads(await redis.get(key) or "")["note"] == "leader"
    entries = await redis.xrange(keys.events) or []
    assert [dict(fields or {}).get("event") for _, fields in entries] == ['{"kind": "x"}']


async def test_a_record_deleted_since_it_was_read_is_not_written_back(redis: Redis) -> None:
    keys = Keys("t")
    store = VersionedStore[Record](redis, keys)
    key = keys.flag_schedule("beta")
    record = await store.save(key, Record(flag="beta", version=0))
    await redis.delete(key)  # the flag was deleted meanwhile
    with pytest.raises(VersionChanged):
        await store.save(key, record)
    assert await redis.get(key) is None
