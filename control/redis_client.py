"""A redis-py client for the control plane, with small explicit timeouts (see proxy's twin).

Every connection has a 2 s socket and connect timeout: to the Redis servers, and to each
Sentinel (``sentinel_kwargs``; without them a frozen Sentinel, which accepts connections and
never answers, would hold every discovery of the primary, and so every admin call, for as
long as the kernel keeps the connection). Failed commands are retried twice, briefly: enough
to replace a connection to a primary that has just been demoted or killed.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from config.redis_url import parse_redis_url

SOCKET_TIMEOUT_S = 2.0


class SentinelRedis(Redis):
    """The primary's client; closing it also closes the clients of the Sentinels it asks."""

    discovery: Sentinel | None = None
    write_wait: tuple[int, float] = (0, 0.0)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.discovery is not None:
            for client in self.discovery.sentinels:
                await client.aclose()


class StandaloneRedis(Redis):
    write_wait: tuple[int, float] = (0, 0.0)


def write_wait(client: Any) -> tuple[int, float]:
    """The replicas each document write waits for, and for how long (``wait_replicas``)."""
    wait: tuple[int, float] = getattr(client, "write_wait", (0, 0.0))
    return wait


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
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)
    wait = (target.wait_replicas, target.wait_timeout_s)
    if target.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes),
            # Asking a Sentinel: bounded, never retried (the next Sentinel is asked instead).
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
        primary.write_wait = wait
        return primary
    client = StandaloneRedis.from_url(
        target.url, decode_responses=True, retry=retry, health_check_interval=10, **timeouts
    )
    assert isinstance(client, StandaloneRedis)
    client.write_wait = wait
    return client
