"""Each proxy replica's ack carries its upstreams' passive health (for the dashboard), with
no Redis write of its own: an upstream that refuses connections shows as ejected."""

from __future__ import annotations

import aiohttp
from redis.asyncio import Redis

from config.keys import Ack, Keys
from config.schema import SplitgateConfig
from control.store import DocumentStore
from proxy.app import Follow
from splitgate.redis_server import RedisServer
from tests.conftest import StartProxy, StartUpstream, refused_url
from tests.proxy.test_watcher import CHANGE, eventually, raw_redis

__all__ = ["raw_redis"]  # the fixture


async def test_an_ejected_upstream_shows_in_the_ack(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    redis_server: RedisServer,
    raw_redis: Redis,
) -> None:
    _, good = await start_upstream("v1")
    dead = refused_url()
    config = SplitgateConfig.model_validate(
        {
            "proxy": {"outlier_detection": {"consecutive_failures": 1}},
            "routes": [
                {
                    "name": "chat",
                    "match": {"path_prefix": "/"},
                    "tracks": [
                        {
                            "name": "stable",
                            "version": "v1",
                            "upstreams": [good, dead],
                            "weight": 100,
                        }
                    ],
                }
            ],
        }
    )
    await DocumentStore(raw_redis, Keys()).write(config.document(), 0, CHANGE)
    proxy = await start_proxy(config, follow=Follow(redis_server.url, "p1", poll_s=0.1))
    async with aiohttp.ClientSession() as session:
        for _ in range(4):  # round robin: the dead one is tried, fails over, and is ejected
            async with session.get(f"{proxy}/v1/models") as r:
                assert r.status == 200

    async def reported() -> bool:
        raw = await raw_redis.get(Keys().ack("p1"))
        return raw is not None and Ack.model_validate_json(raw).upstreams[dead].ejected

    await eventually(reported)
    raw = await raw_redis.get(Keys().ack("p1"))
    assert raw is not None
    ack = Ack.model_validate_json(raw)
    assert set(ack.upstreams) == {good, dead}
    assert not ack.upstreams[good].ejected and ack.upstreams[dead].ejections == 1


def test_an_ack_without_upstreams_reads_as_before() -> None:
    old = Ack.model_validate_json('{"generation": 3, "applied_at": 1.0, "digest": "ab"}')
    assert old.upstreams == {}
