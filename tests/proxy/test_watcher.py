"""The proxy following Redis in-process: swaps, refusals, fail static, pub/sub loss."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from config.keys import Keys, StoredDocument
from config.schema import RoutingDocument, SplitgateConfig
from control.edits import set_weights
from control.store import Change, DocumentStore
from proxy.app import Follow
from proxy.watcher import RoutingWatcher
from splitgate.redis_server import RedisServer
from tests.conftest import StartProxy, StartUpstream, two_track_config

CHANGE = Change("test", "", "set_weights", "routes/chat/weights")


async def eventually(condition: Callable[[], Any], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - polling another server's state
            await asyncio.sleep(0.02)


@pytest.fixture
async def raw_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_server.url, decode_responses=True)
    yield r
    await r.aclose()


async def readyz(proxy: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy}/readyz") as r:
        body: dict[str, Any] = await r.json()
        return body


async def canary_users(proxy: str, n: int = 300) -> set[str]:
    users = set()
    async with aiohttp.ClientSession() as s:
        for i in range(n):
            async with s.get(f"{proxy}/v1/models", headers={"x-user-id": f"user-{i}"}) as r:
                assert r.status == 200
                if r.headers["X-Splitgate-Track"] == "canary":
                    users.add(f"user-{i}")
    return users


async def setup(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
    weight: float = 5,
    instance: str = "proxy-test",
    **follow: Any,
) -> tuple[str, SplitgateConfig, DocumentStore]:
    _, stable = await start_upstream("v1")
    _, canary = await start_upstream("v2")
    config = two_track_config(stable, canary, canary_weight=weight)
    store = DocumentStore(raw_redis, Keys())
    await store.write(config.document(), 0, CHANGE)
    options = {"poll_s": 0.2, **follow}
    proxy = await start_proxy(config, follow=Follow(redis_server.url, instance, **options))
    return proxy, config, store


async def until_generation(proxy: str, generation: int) -> None:
    async def applied() -> bool:
        return bool((await readyz(proxy))["generation"] == generation)

    await eventually(applied)


async def change_weights(store: DocumentStore, canary: float) -> int:
    current = await store.read()
    assert current is not None
    new = set_weights(current.routing(), "chat", {"stable": 100 - canary, "canary": canary})
    return (await store.write(new, current.generation, CHANGE)).generation


async def test_weight_change_reaches_the_proxy_and_only_adds_canary_users(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    proxy, _, store = await setup(start_upstream, start_proxy, redis_server, raw_redis)
    assert (await readyz(proxy))["generation"] == 1
    at_5 = await canary_users(proxy)
    generation = await change_weights(store, 25)

    await until_generation(proxy, generation)
    at_25 = await canary_users(proxy)
    assert at_5 < at_25
    assert 40 < len(at_25) < 110  # about 25 % of 300
    ack = await raw_redis.get(Keys().ack("proxy-test"))
    assert ack is not None and f'"generation":{generation}' in ack
    redis = (await readyz(proxy))["redis"]
    assert f'"digest":"{redis["digest"]}"' in ack
    assert (redis["store_generation"], redis["behind_looks"]) == (generation, 0)


async def test_invalid_document_is_refused_and_the_last_good_one_stays(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    proxy, _, _ = await setup(start_upstream, start_proxy, redis_server, raw_redis)
    keys = Keys()
    await raw_redis.set(
        keys.document, '{"generation": 2, "routes": [{"name": "chat", "tracks": []}]}'
    )
    await raw_redis.set(keys.generation, 2)
    await raw_redis.publish(keys.changes, 2)

    async def refused() -> bool:
        return bool((await readyz(proxy))["redis"]["rejected_documents"] >= 1)

    await eventually(refused)
    assert (await readyz(proxy))["generation"] == 1
    assert len(await canary_users(proxy, 50)) < 50


async def test_redis_killed_and_restarted_empty_keeps_the_routing(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    proxy, _, store = await setup(start_upstream, start_proxy, redis_server, raw_redis)
    generation = await change_weights(store, 25)

    await until_generation(proxy, generation)
    before = await canary_users(proxy)
    redis_server.kill()

    async def disconnected() -> bool:
        return not (await readyz(proxy))["redis"]["connected"]

    await eventually(disconnected)
    assert await canary_users(proxy) == before  # fail static: nobody moved, nothing failed
    await asyncio.to_thread(redis_server.start)  # back, and empty

    async def reconnected() -> bool:
        return bool((await readyz(proxy))["redis"]["connected"])

    await eventually(reconnected)
    state = await readyz(proxy)
    assert state["generation"] == generation and state["redis"]["document_missing"]
    assert await canary_users(proxy) == before


async def test_poll_applies_a_change_when_pubsub_is_gone(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    proxy, _, store = await setup(start_upstream, start_proxy, redis_server, raw_redis)
    await raw_redis.client_kill_filter(_type="pubsub")
    generation = await change_weights(store, 50)

    await until_generation(proxy, generation)


async def test_proxy_started_while_redis_is_down_serves_the_file_then_joins(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    _, stable = await start_upstream("v1")
    _, canary = await start_upstream("v2")
    config = two_track_config(stable, canary, canary_weight=5)
    redis_server.kill()
    proxy = await start_proxy(
        config, follow=Follow(redis_server.url, "late", poll_s=0.2, first_sync_s=0.3)
    )
    state = await readyz(proxy)
    assert (state["source"], state["redis"]["connected"]) == ("file", False)
    assert len(await canary_users(proxy, 100)) < 20
    await asyncio.to_thread(redis_server.start)
    doc = set_weights(RoutingDocument(routes=config.routes), "chat", {"stable": 50, "canary": 50})
    await DocumentStore(raw_redis, Keys()).write(doc, 0, CHANGE)

    async def joined() -> bool:
        return bool((await readyz(proxy))["source"] == "redis")

    await eventually(joined)
    assert (await readyz(proxy))["generation"] == 1
    stored = await raw_redis.get(Keys().document)
    assert stored is not None and StoredDocument.decode(stored).generation == 1


async def test_poll_alone_follows_changes_without_pubsub(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    proxy, _, store = await setup(
        start_upstream,
        start_proxy,
        redis_server,
        raw_redis,
        instance="poller",
        poll_s=0.1,
        pubsub=False,
    )
    assert await raw_redis.pubsub_numsub(Keys().changes) == [(Keys().changes, 0)]
    generation = await change_weights(store, 30)

    await until_generation(proxy, generation)


async def test_garbage_generation_is_refused(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    proxy, _, _ = await setup(start_upstream, start_proxy, redis_server, raw_redis)
    await raw_redis.set(Keys().generation, "not-a-number")

    async def refused() -> bool:
        return bool((await readyz(proxy))["redis"]["rejected_documents"] >= 1)

    await eventually(refused)
    state = await readyz(proxy)
    assert state["generation"] == 1 and state["redis"]["connected"]


async def test_ack_names_the_document_and_a_lower_generation_is_a_failover_signal(
    raw_redis: Redis,
) -> None:
    """The watcher alone, on a real Redis: its ack carries the applied document's digest; a
    stored generation below the applied one (a failover lost writes) changes nothing but is
    counted, and the next write above it is applied."""
    config = two_track_config("http://127.0.0.1:1", "http://127.0.0.1:2")
    store = DocumentStore(raw_redis, Keys())
    first = await store.write(config.document(), 0, CHANGE)
    applied: list[StoredDocument] = []
    watcher = RoutingWatcher(
        raw_redis,
        Keys(),
        "w",
        applied.append,
        lambda: applied[-1].generation if applied else 0,
    )
    second = await store.write(
        set_weights(first.routing(), "chat", {"stable": 30, "canary": 70}), 1, CHANGE
    )
    await watcher.sync()
    assert [d.generation for d in applied] == [2] and watcher.digest == second.digest
    raw_ack = await raw_redis.get(Keys().ack("w"))
    assert raw_ack is not None and f'"digest":"{second.digest}"' in raw_ack

    await raw_redis.set(Keys().document, first.encode())  # the promoted replica's copy
    await raw_redis.set(Keys().generation, 1)
    await watcher.sync()
    await watcher.sync()
    assert len(applied) == 1 and watcher.behind == 2 and watcher.store_generation == 1
    assert (await store.acks())["w"].generation == 2  # what it routes by, for the guardian

    third = await DocumentStore(raw_redis, Keys()).write(first.routing(), 1, CHANGE)
    assert third.generation == 3  # a fresh store still writes above the ack
    await watcher.sync()
    assert [d.generation for d in applied] == [2, 3] and watcher.digest == third.digest
