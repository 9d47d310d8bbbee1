"""A redis-py client for the control plane, with small explicit timeouts (see proxy's twin).

Every connection has a 2 s socket and connect timeout: to the Redis servers, and to each
Sentinel (``sentinel_kwargs``; without them a frozen Sentinel, which accepts connections and
never answers, would hold every discovery of the primary, and so every admin call, for as
long as the kernel keeps the connection). Failed commands are retried twice, briefly: enough
to replace a connection to a primary that has just been demoted or killed.

Why this factory has a twin in ``proxy.redis_client``: building redis-py objects needs redis,
which ``config`` (the shared contract) never imports, and the two planes never import each
other. So everything that needs no redis-py (the URL forms, the timeouts, the retry policies)
is defined once in ``config.redis_url``, and each plane keeps only its thin translation into
redis-py objects. The planes differ in their retries (the proxy's loops retry on their own)
and in the wait for replicas after each document write, which only the control plane makes.
"""

from __future__ import annotations

from typing import TypeAlias, assert_never

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from config.redis_url import (
    CONTROL_RETRY,
    HEALTH_CHECK_S,
    NO_RETRY,
    SOCKET_TIMEOUT_S,
    RetryPolicy,
    parse_redis_url,
)

RedisClient: TypeAlias = Redis | RedisCluster
"""What ``connect`` returns: a standalone server's or a Sentinel primary's client (both a
``Redis``), or a Cluster's, which is not one. Every client decodes responses to ``str``."""


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


def write_wait(client: RedisClient) -> tuple[int, float]:
    """The replicas each document write waits for, and for how long (``wait_replicas``).

    ``(0, 0.0)`` (no wait) for a Cluster, and for a client ``connect`` did not make."""
    if isinstance(client, (SentinelRedis, StandaloneRedis)):
        return client.write_wait
    return (0, 0.0)


def connect(url: str) -> RedisClient:
    """A client for ``url`` (standalone, ``redis+sentinel://`` or ``redis+cluster://``)."""
    target = parse_redis_url(url)
    wait = (target.wait_replicas, target.wait_timeout_s)
    if target.kind == "cluster":
        return RedisCluster.from_url(
            target.url,
            password=target.password,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
        )
    if target.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes),
            # Asking a Sentinel: bounded, never retried (the next Sentinel is asked instead).
            sentinel_kwargs={
                "socket_timeout": SOCKET_TIMEOUT_S,
                "socket_connect_timeout": SOCKET_TIMEOUT_S,
                "retry": _retry(NO_RETRY),
                "password": target.sentinel_password,
            },
            password=target.password,
        )
        primary = sentinel.master_for(
            target.service,
            redis_class=SentinelRedis,
            db=target.db,
            decode_responses=True,
            retry=_retry(CONTROL_RETRY),
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
        )
        assert isinstance(primary, SentinelRedis)
        primary.discovery = sentinel
        primary.write_wait = wait
        return primary
    if target.kind == "standalone":
        client = StandaloneRedis.from_url(
            target.url,
            decode_responses=True,
            retry=_retry(CONTROL_RETRY),
            health_check_interval=HEALTH_CHECK_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
        )
        assert isinstance(client, StandaloneRedis)
        client.write_wait = wait
        return client
    assert_never(target.kind)


def _retry(policy: RetryPolicy) -> Retry:
    if not policy.retries:
        return Retry(NoBackoff(), 0)
    return Retry(ExponentialBackoff(cap=policy.cap_s, base=policy.base_s), policy.retries)
