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

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias, assert_never, overload

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


@overload
def text(reply: bytes | str) -> str: ...
@overload
def text(reply: None) -> None: ...
def text(reply: bytes | str | None) -> str | None:
    """A string reply as ``str``: every client here decodes (``decode_responses=True``), but
    redis-py's annotations cannot know that and say ``bytes | str``."""
    return reply.decode() if isinstance(reply, bytes) else reply


StreamReply = Iterable[tuple[bytes | str | None, Mapping[bytes | str, bytes | str] | None]]
"""A stream range as redis-py annotates it (``XRANGE``, ``XREVRANGE``)."""


def entries(reply: StreamReply | None) -> list[tuple[str, dict[str, str]]]:
    """A stream range as (id, fields) strings, in order. redis-py's annotations allow an
    entry without id or fields (one deleted meanwhile, in some replies): left out."""
    return [
        (text(entry_id), {text(k): text(v) for k, v in fields.items()})
        for entry_id, fields in reply or ()
        if entry_id is not None and fields is not None
    ]


def stream_reads(
    reply: Iterable[Sequence[Any]] | Mapping[bytes | str, Any] | None,
) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """An ``XREAD`` reply (RESP2's list of [stream, entries], or RESP3's map) as (stream,
    entries) strings."""
    pairs: list[tuple[Any, Any]]
    if isinstance(reply, Mapping):
        pairs = list(reply.items())
    else:
        pairs = [(item[0], item[1]) for item in reply or ()]
    return [(text(stream), entries(found)) for stream, found in pairs]


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
