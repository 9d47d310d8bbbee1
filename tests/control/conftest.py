"""Fixtures of the admin API tests: a client for the module's ``control`` fixture, and Redis;
and of the webhook tests: a Redis client and notifiers closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from config.keys import Keys, StoredDocument
from control.app import ControlApp
from control.notify import Notifier
from splitgate.redis_server import RedisServer
from tests.control.notify_helpers import KEYS, SECRET, MakeNotifier, Sleeps
from tests.control.rollout_bench import bench

__all__ = ["bench", "client", "raw_redis"]  # fixtures of every test module here


@pytest.fixture
async def client(control: ControlApp) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of the admin API of the test module's own ``control`` fixture."""
    async with TestClient(TestServer(control.web_app())) as c:
        yield c


@pytest.fixture
async def raw_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_server.url, decode_responses=True)
    yield r
    await r.aclose()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """The webhook tests' Redis client (``test_notify*.py``)."""
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_notifier(redis: Redis) -> AsyncIterator[MakeNotifier]:
    """``make_notifier(urls, **options)``: a webhook notifier with the test secret and recorded
    backoff sleeps, closed after the test."""
    made: list[Notifier] = []

    def make(urls: Sequence[str], **options: Any) -> Notifier:
        options.setdefault("sleep", Sleeps())
        notifier = Notifier(redis, KEYS, urls, SECRET, **options)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


async def stored(raw_redis: Redis) -> StoredDocument:
    """The routing document as Redis holds it."""
    raw = await raw_redis.get(Keys().document)
    assert raw is not None
    return StoredDocument.decode(raw)
