"""The decision writer against a real Redis: a batch per flush into slot hashes with a bounded
lifetime, the bucket of each rule, no client id in the clear, a failed batch dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from config.decisions import (
    RETENTION_S,
    SLOT_S,
    Decision,
    DecisionLogSettings,
    client_field,
    slot_start,
)
from config.keys import Keys
from config.stickiness import bucket
from proxy.decision_writer import DecisionWriter
from proxy.decisions import DecisionLog
from proxy.flusher import MetricsFlusher
from proxy.stats import StatsRegistry
from splitgate.redis_server import RedisServer
from tests.conftest import refused_url
from tests.proxy.decision_table import finished, route

NOW = 1_800_000_001.0
"""One second into a slot: a decision two seconds old belongs to the slot before."""


def client(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    r = client(redis_server.url)
    yield r
    await r.aclose()


def active_log() -> DecisionLog:
    log = DecisionLog(DecisionLogSettings(sample_percent=100))
    log.activate()
    return log


async def test_a_batch_lands_in_its_slots_with_each_rules_bucket(redis: Redis) -> None:
    assert slot_start(NOW) == NOW - 1
    chat = route()
    assert chat.flags is not None
    beta = chat.flags.flags[0]
    log = active_log()
    writer = DecisionWriter(redis, Keys(), log, clock=lambda: NOW)
    now = asyncio.get_running_loop().time()
    log.note(finished(chat, "n1", started=now - 0.5), chat, False, "alice")
    log.note(
        finished(chat, "n2", chosen="canary", flag=True, started=now - 0.5), chat, False, "bob"
    )
    log.note(
        finished(chat, "n3", chosen="canary", client_id="client-id-3", started=now - 0.5),
        chat,
        True,
        None,
    )
    log.note(
        finished(chat, "n4", chosen="canary", answered="stable", error="cut", started=now - 2),
        chat,
        False,
        None,
    )
    await writer.flush()
    assert writer.written == 4 and log.drain() == []

    current = await redis.hgetall(Keys().decisions(slot_start(NOW)))
    assert set(current) == {"n1", "n2", "n3", client_field("client-id-3")}
    weights = Decision.model_validate_json(current["n1"])
    assert weights.model_dump() == {
        "route": "chat",
        "track": "stable",
        "version": "v1",
        "chosen": "stable",
        "rule": "weights",
        "bucket": chat.bucket_of("alice"),
        "generation": 7,
        "at": pytest.approx(NOW - 0.5, abs=0.05),
        "error": None,
        "shadow": None,
    }
    flagged = Decision.model_validate_json(current["n2"])
    assert (flagged.rule, flagged.track) == ("flag:beta", "canary")
    assert flagged.bucket == bucket(beta.salt, "bob")  # the flag's own hash
    forced = Decision.model_validate_json(current["n3"])
    assert (forced.rule, forced.bucket, forced.version) == ("override", None, "v2")
    assert current[client_field("client-id-3")] == current["n3"]
    assert not any("client-id-3" in f or "client-id-3" in v for f, v in current.items())
    assert not any("alice" in v or "bob" in v for v in current.values())  # no sticky key

    earlier = await redis.hgetall(Keys().decisions(slot_start(NOW) - SLOT_S))
    fallback = Decision.model_validate_json(earlier["n4"])
    assert (fallback.chosen, fallback.track, fallback.error) == ("canary", "stable", "cut")
    for start in (slot_start(NOW), slot_start(NOW) - SLOT_S):
        ttl = await redis.ttl(Keys().decisions(start))
        # Kept RETENTION_S after the slot ends: at least RETENTION_S for every entry in it.
        assert start + SLOT_S + RETENTION_S - NOW <= ttl <= start + SLOT_S + RETENTION_S - NOW + 1


async def test_a_failed_batch_is_dropped_and_counted() -> None:
    r = client(refused_url().replace("http://", "redis://"))
    try:
        chat = route()
        log = active_log()
        writer = DecisionWriter(r, Keys(), log, clock=lambda: NOW)
        for i in range(3):
            log.note(finished(chat, f"n{i}"), chat, False, None)
        with pytest.raises((RedisError, OSError)):
            await writer.flush()
        assert log.dropped == 3 and writer.written == 0
        await writer.flush()  # nothing waits: nothing is resent
        assert log.dropped == 3
    finally:
        await r.aclose()


async def test_the_metrics_flusher_sends_the_decisions(redis: Redis) -> None:
    chat = route()
    log = active_log()
    writer = DecisionWriter(redis, Keys(), log, clock=lambda: NOW)
    flusher = MetricsFlusher(redis, Keys(), StatsRegistry(), clock=lambda: NOW, decisions=writer)
    log.note(finished(chat, "n1", started=asyncio.get_running_loop().time()), chat, False, "a")
    await flusher.flush_decisions()
    assert await redis.hexists(Keys().decisions(slot_start(NOW)), "n1")
