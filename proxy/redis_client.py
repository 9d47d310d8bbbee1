"""A redis-py client for the proxy's background tasks, with small explicit timeouts.

redis-py's defaults (5 s socket timeouts, several retries) can hold one call for tens of
seconds against a hung server; the watcher would rather fail fast and retry on its own. The
same holds for each Sentinel asked where the primary is (``sentinel_kwargs``): a frozen
Sentinel costs one 2 s timeout, then the next one is asked, and the one that answered is
asked first from then on.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

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
    timeouts: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_S,
        "socket_connect_timeout": SOCKET_TIMEOUT_S,
    }
    if target.kind == "cluster":
        return RedisCluster.from_url(
            target.url, password=target.password, decode_responses=True, **timeouts
        )
    retry = Retry(NoBackoff(), 0)
    if target.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes),
            sentinel_kwargs={
                **timeouts,
                "retry": Retry(NoBackoff(), 0),
                "password": target.sentinel_password,
            },
            password=target.password,
        )
        primary = sentinel.master_for(
            target.service,
            redis_class=SentinelRedis,
            db=target.db,
            decode_responses=True,
            retry=retry,
            **timeouts,
        )
        primary.discovery = sentinel
        return primary
    return Redis.from_url(
        target.url, decode_responses=True, retry=retry, health_check_interval=10, **timeouts
    )
