"""Following Redis: the routing watcher and the metrics flusher, on one client.

Imported only by a proxy that follows Redis (``ProxyApp.start``), so that redis-py stays
out of a proxy that serves a file alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from redis.exceptions import RedisError

from config.keys import StoredDocument, UpstreamHealth
from config.tasks import stop
from proxy.decision_writer import DecisionWriter
from proxy.decisions import DecisionLog
from proxy.flusher import MetricsFlusher
from proxy.redis_client import RedisClient, connect
from proxy.settings import Follow
from proxy.shadow import Mirror
from proxy.shadow_pairs import PairWriter
from proxy.stats import StatsRegistry
from proxy.watcher import RoutingWatcher

log = logging.getLogger("splitgate.proxy")


async def join(
    follow: Follow,
    apply: Callable[[StoredDocument], None],
    generation: Callable[[], int],
    stats: StatsRegistry,
    health: Callable[[], Mapping[str, UpstreamHealth]] = dict,
    decisions: DecisionLog | None = None,
    mirror: Mirror | None = None,
) -> tuple[RedisClient, RoutingWatcher, MetricsFlusher, list[asyncio.Task[None]]]:
    """One quick first look, then the watcher and the flusher in the background: the Redis
    client, both, and their tasks. When Redis does not answer within ``first_sync_s`` the
    proxy serves the file's routing and the watcher keeps trying. The flusher also writes
    the routing decisions ``decisions`` keeps (``config.decisions``) and the shadow pairs
    ``mirror`` completes (``config.shadow``)."""
    redis = connect(follow.redis_url)
    watcher = RoutingWatcher(
        redis,
        follow.keys,
        follow.instance,
        apply,
        generation,
        poll_s=follow.poll_s,
        pubsub=follow.pubsub,
        health=health,
    )
    try:
        async with asyncio.timeout(follow.first_sync_s):
            await watcher.sync()
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("Redis not reachable at start (%s): serving the file's routing", exc)
    writer = None
    if decisions is not None:
        writer = DecisionWriter(redis, follow.keys, decisions)
        decisions.activate()
    pairs = None
    if mirror is not None:
        pairs = PairWriter(redis, follow.keys, mirror)
        mirror.keeps_pairs = True
    flusher = MetricsFlusher(redis, follow.keys, stats, decisions=writer, pairs=pairs)
    tasks = [
        asyncio.create_task(watcher.run(), name="routing-watcher"),
        asyncio.create_task(flusher.run(), name="metrics-flusher"),
    ]
    return redis, watcher, flusher, tasks


async def leave(
    redis: RedisClient, tasks: list[asyncio.Task[None]], flusher: MetricsFlusher | None
) -> None:
    """Stop the loops, flush the last second's counts, close the client."""
    for task in tasks:
        await stop(task)
    if flusher is not None:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(2):
                await flusher.flush()
                await flusher.flush_decisions()
                await flusher.flush_pairs()
    await redis.aclose()
