"""The document store against a real Redis: generations above every ack, writes a failover
lost put back, "applied" meaning this very document (digest), and ``WAIT``."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from config.keys import Ack, Keys, StoredDocument
from config.loader import ConfigError
from config.schema import RoutingDocument
from control.edits import set_weights
from control.guardian import Guardian
from control.redis_client import connect, write_wait
from control.settings import from_args
from control.store import GUARDIAN, Change, DocumentStore, Stale
from splitgate.redis_server import RedisServer, find_binary, free_port
from tests.conftest import two_track_config

CHANGE = Change("test", "", "set_weights", "routes/chat/weights")
KEYS = Keys()
SEED = two_track_config("http://127.0.0.1:1", "http://127.0.0.1:2", canary_weight=5).document()


@pytest.fixture
async def raw_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_server.url, decode_responses=True)
    yield r
    await r.aclose()


def canary(document: RoutingDocument, weight: float) -> RoutingDocument:
    return set_weights(document, "chat", {"stable": 100 - weight, "canary": weight})


async def ack(raw_redis: Redis, instance: str, generation: int, digest: str = "") -> None:
    value = Ack(generation=generation, applied_at=0.0, digest=digest).model_dump_json()
    await raw_redis.set(KEYS.ack(instance), value, px=15_000)


async def put_back(raw_redis: Redis, document: StoredDocument) -> None:
    """What a promoted replica holds: an older document, as it was stored."""
    await raw_redis.set(KEYS.document, document.encode())
    await raw_redis.set(KEYS.generation, document.generation)


async def test_a_write_goes_above_every_ack(raw_redis: Redis) -> None:
    store = DocumentStore(raw_redis, KEYS)
    first = await store.write(SEED, 0, CHANGE)
    await ack(raw_redis, "proxy-a", 7)  # a replica that applied a write Redis lost
    second = await store.write(canary(SEED, 20), first.generation, CHANGE)
    assert second.generation == 8


async def test_a_write_on_a_store_that_lost_the_last_write_restores_it_first(
    raw_redis: Redis,
) -> None:
    store = DocumentStore(raw_redis, KEYS)
    first = await store.write(SEED, 0, CHANGE)
    lost = await store.write(canary(SEED, 70), first.generation, CHANGE)
    await put_back(raw_redis, first)  # the failover: generation 1 again
    with pytest.raises(Stale) as stale:
        await store.write(canary(SEED, 10), first.generation, CHANGE)
    restored = await store.read()
    assert restored is not None and restored.generation == stale.value.current == 3
    assert restored.routing() == lost.routing()  # the lost weights, back
    record = (await store.audit(1))[0]
    assert record["actor"] == GUARDIAN and record["action"] == "reapply"
    assert record["reason"].startswith("re-applied generation 2 lost by a Redis failover")
    again = await store.write(canary(restored.routing(), 10), restored.generation, CHANGE)
    assert again.generation == 4


async def test_the_guardian_restores_a_lost_write_and_realigns_strays(raw_redis: Redis) -> None:
    store = DocumentStore(raw_redis, KEYS)
    guardian = Guardian(store, SEED)
    first = await guardian.check()
    lost = await store.write(canary(SEED, 70), first.generation, CHANGE)
    await put_back(raw_redis, first)
    restored = await guardian.check()
    assert (restored.generation, restored.routing()) == (3, lost.routing())
    assert await guardian.check() == restored  # nothing more to do

    # Another control plane's write, lost: this one never saw it; only the acks tell.
    await ack(raw_redis, "proxy-a", 4, "0" * 32)
    realigned = await guardian.check()
    assert realigned.generation == 5 and realigned.routing() == restored.routing()
    record = (await store.audit(1))[0]
    assert (record["actor"], record["action"]) == (GUARDIAN, "republish")
    assert "apply generation 4, which Redis does not hold" in record["reason"]


async def test_a_store_never_restores_over_a_newer_document_the_fleet_applied(
    raw_redis: Redis,
) -> None:
    leader, follower = DocumentStore(raw_redis, KEYS), DocumentStore(raw_redis, KEYS)
    first = await leader.write(SEED, 0, CHANGE)
    second = await leader.write(canary(SEED, 20), first.generation, CHANGE)
    await follower.read()  # the follower's newest view: generation 2 (20 %)
    third = await leader.write(canary(SEED, 50), second.generation, CHANGE)
    await ack(raw_redis, "proxy-a", third.generation, third.digest)  # the fleet runs 50 %
    await put_back(raw_redis, first)  # the failover lost generations 2 and 3
    assert await follower.restore() is None  # 20 % over the fleet's 50 % would roll it back
    restored = await leader.restore()  # the leader knows generation 3
    assert restored is not None and restored.routing() == third.routing()


async def test_the_same_generation_with_another_digest_is_not_applied(raw_redis: Redis) -> None:
    store = DocumentStore(raw_redis, KEYS)
    stored = await store.write(SEED, 0, CHANGE)
    assert not await store.converged(stored.generation)  # no live replica at all
    await ack(raw_redis, "proxy-a", stored.generation, stored.digest)
    await ack(raw_redis, "proxy-b", stored.generation)  # an older proxy: no digest
    assert await store.converged(stored.generation)
    await ack(raw_redis, "proxy-b", stored.generation, "f" * 32)  # a document Redis lost
    assert not await store.converged(stored.generation)
    assert not await store.applied(stored)
    newer = await store.write(canary(SEED, 20), stored.generation, CHANGE)
    await ack(raw_redis, "proxy-b", newer.generation, newer.digest)
    assert await store.applied(stored)  # each has it, or what superseded it in Redis
    assert not await store.converged(newer.generation)  # proxy-a is still on the old one
    await ack(raw_redis, "proxy-a", newer.generation, newer.digest)
    assert await store.converged(newer.generation)
    assert not await store.converged(newer.generation + 1)


async def test_digest_is_that_of_the_stored_value(raw_redis: Redis) -> None:
    store = DocumentStore(raw_redis, KEYS)
    written = await store.write(SEED, 0, CHANGE)
    raw = await raw_redis.get(KEYS.document)
    assert raw is not None
    assert StoredDocument.decode(raw).digest == written.digest
    other = json.loads(raw) | {"written_at": 1.0}
    assert StoredDocument.decode(json.dumps(other)).digest != written.digest


@pytest.fixture
def replica(redis_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            find_binary(),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)),
            *("--save", "", "--appendonly", "no"),
            *("--replicaof", "127.0.0.1", str(redis_server.port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_wait_for_replicas(raw_redis: Redis, replica: int) -> None:
    async with Redis(port=replica, decode_responses=True) as r, asyncio.timeout(20):
        while (await r.info("replication"))["master_link_status"] != "up":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    store = DocumentStore(raw_redis, KEYS, wait=(1, 2.0))
    first = await store.write(SEED, 0, CHANGE)
    assert store.unreplicated == 0
    async with Redis(port=replica, decode_responses=True) as r:
        assert await r.get(KEYS.generation) == str(first.generation)  # there before the answer
    demanding = DocumentStore(raw_redis, KEYS, wait=(2, 0.05))  # only one replica exists
    second = await demanding.write(canary(SEED, 20), first.generation, CHANGE)
    assert second.generation == 2 and demanding.unreplicated == 1  # stored, and said so


def test_wait_setting_reaches_the_store_through_the_url(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - name: chat\n    match: {path_prefix: /}\n    tracks:\n"
        '      - {name: stable, version: v1, upstreams: ["http://127.0.0.1:1"], weight: 100}\n',
        encoding="utf-8",
    )
    env = {"SPLITGATE_ADMIN_TOKEN": "t" * 20, "SPLITGATE_REDIS_WAIT_REPLICAS": "2"}
    args = ["--config", str(routes), "--redis-url", "redis://127.0.0.1:1/0"]
    process = from_args([*args, "--redis-wait-replicas", "1/200ms"], env)
    assert write_wait(connect(process.redis_url)) == (1, 0.2)  # the flag wins
    assert write_wait(connect(from_args(args, env).redis_url)) == (2, 1.0)
    with pytest.raises(ConfigError) as error:
        from_args(args, {**env, "SPLITGATE_REDIS_WAIT_REPLICAS": "all"})
    assert str(error.value).count("\n") == 0 and "SPLITGATE_REDIS_WAIT_REPLICAS 'all'" in str(
        error.value
    )
