"""A redis-py client for the control plane, with small explicit timeouts (see proxy's twin)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from config.redis_url import parse_redis_url

SOCKET_TIMEOUT_S = 2.0


class SentinelRedis(Redis):
    """The primary's client; closing it also closes the clients of the Sentinels it asks."""

    discovery: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.discovery is not None:
            for client in self.discovery.sentinels:
                await client.aclose()


def connect(url: str) -> Any:
    """A client for ``url`` (standalone, ``redis+sentinel://`` or ``redis+cluster://``)."""
    target = parse_redis_url(url)
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
        "decode_responses": True,
    }
    if target.kind == "cluster":
        return RedisCluster.from_url(target.url, password=target.password, **options)
    if target.kind == "sentinel":
        sentinel = Sentinel(list(target.nodes), password=target.password)  # type: ignore[no-untyped-call]
        primary = sentinel.master_for(
            target.service, redis_class=SentinelRedis, db=target.db, **options
        )
        primary.discovery = sentinel
        return primary
    return Redis.from_url(target.url, **options)
