"""The flusher against a real Redis: exact deltas, catch-up after an outage, bounded backlog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.keys import Keys
from config.metrics import field_name, window_start
from proxy.flusher import MetricsFlusher
from proxy.stats import StatsRegistry
from splitgate.redis_server import RedisServer

NOW = 1_800_000_005.0


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(
        redis_server.url,
        decode_responses=True,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )
    yield client
    await client.aclose()


def window(route: str = "chat") -> str:
    return Keys().metrics_window(route, window_start(NOW))


async def test_only_growth_is_sent_and_sums_are_exact(redis: Redis) -> None:
    stats = StatsRegistry()
    flusher = MetricsFlusher(redis, Keys(), stats, clock=lambda: NOW)
    s = stats.get("chat", "stable", "v1")
    s.record(10.0, 4.0, None)
    s.record(12.5, None, "timeout")
    await flusher.flush()
    s.record(1.0, 1.0, None)
    s.add_usage(5, 3)
    await flusher.flush()
    await flusher.flush()  # nothing new: nothing sent
    got = await redis.hgetall(window())
    assert got[field_name("stable", "v1", "requests")] == "3"
    assert got[field_name("stable", "v1", "err:timeout")] == "1"
    assert float(got[field_name("stable", "v1", "lat_sum_ms")]) == 23.5
    assert got[field_name("stable", "v1", "tok:prompt")] == "5"
    assert 0 < await redis.ttl(window()) <= 6 * 3600


async def test_counts_wait_while_redis_is_down_and_arrive_once(
    redis: Redis, redis_server: RedisServer
) -> None:
    stats = StatsRegistry()
    flusher = MetricsFlusher(redis, Keys(), stats, clock=lambda: NOW)
    s = stats.get("chat", "stable", "v1")
    s.record(10.0, 4.0, None)
    redis_server.kill()
    with pytest.raises(Exception):  # noqa: B017 - redis-py raises its ConnectionError
        await flusher.flush()
    s.record(10.0, 4.0, None)
    assert flusher.pending  # kept, and still growing
    await asyncio.to_thread(redis_server.start)
    await flusher.flush()
    assert flusher.pending == {}
    assert (await redis.hgetall(window()))[field_name("stable", "v1", "requests")] == "2"


async def test_backlog_is_bounded_and_drops_are_counted(
    redis: Redis, redis_server: RedisServer
) -> None:
    stats = StatsRegistry()
    clock = [NOW]
    flusher = MetricsFlusher(redis, Keys(), stats, max_pending_windows=2, clock=lambda: clock[0])
    s = stats.get("chat", "stable", "v1")
    for _ in range(4):
        s.record(10.0, None, None)
        flusher.collect()
        clock[0] += 10
    assert len(flusher.pending) == 2
    assert flusher.dropped_requests == 2
