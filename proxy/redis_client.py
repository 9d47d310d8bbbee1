"""A redis-py client for the proxy's background tasks, with small explicit timeouts.

redis-py's defaults (5 s socket timeouts, several retries) can hold one call for tens of
seconds against a hung server; the watcher would rather fail fast and retry on its own. The
same holds for each Sentinel asked where the primary is (``sentinel_kwargs``): a frozen
Sentinel costs one 2 s timeout, then the next one is asked, and the one that answered is
asked first from then on.

Why this factory has a twin in ``control.redis_client``: building redis-py objects needs
redis, which ``config`` (the shared contract) never imports, and the two planes never import
each other. So everything that needs no redis-py (the URL forms, the timeouts, the retry
policies) is defined once in ``config.redis_url``, and each plane keeps only its thin
translation into redis-py objects. The planes differ in their retries (none here: the loops
reconnect with their own backoff) and in the control plane's wait for replicas.
"""

from __future__ import annotations

from typing import TypeAlias, assert_never

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from config.redis_url import (
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

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.discovery is not None:
            for client in self.discovery.sentinels:
                await client.aclose()


def connect(url: str) -> RedisClient:
    """A client for ``url`` (standalone, ``redis+sentinel://`` or ``redis+cluster://``)."""
    target = parse_redis_url(url)
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
            retry=_retry(NO_RETRY),
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
        )
        assert isinstance(primary, SentinelRedis)
        primary.discovery = sentinel
        return primary
    if target.kind == "standalone":
        return Redis.from_url(
            target.url,
            decode_responses=True,
            retry=_retry(NO_RETRY),
            health_check_interval=HEALTH_CHECK_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
        )
    assert_never(target.kind)


def _retry(policy: RetryPolicy) -> Retry:
    if not policy.retries:
        return Retry(NoBackoff(), 0)
    return Retry(ExponentialBackoff(cap=policy.cap_s, base=policy.base_s), policy.retries)
