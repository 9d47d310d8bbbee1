"""A redis-py client for the control plane, with small explicit timeouts (see proxy's twin)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from config.redis_url import parse_redis_url

SOCKET_TIMEOUT_S = 2.0


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
        return sentinel.master_for(target.service, db=target.db, **options)
    return Redis.from_url(target.url, **options)
