"""Reads the fleet's metric windows from Redis and merges them per track and version.

``read`` (dashboards, the latency edge) sees live traffic only; ``read_each`` (a rollout's
accumulators) sees the shadow copies too, as the pseudo-tracks ``shadow_arm(track)``
(``config.metrics``), which no live arm's name matches."""

from __future__ import annotations

import time
from collections.abc import Callable

from config.keys import Keys
from config.metrics import WINDOW_S, WINDOW_TTL_S, TrackWindow, merge_windows, window_start
from control.redis_client import RedisClient


class WindowReader:
    def __init__(
        self, redis: RedisClient, keys: Keys, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._clock = clock

    async def add(self, route: str, fields: dict[str, int]) -> None:
        """Add counts to the current window (feedback received by the control plane)."""
        key = self._keys.metrics_window(route, window_start(self._clock()))
        pipe = self._redis.pipeline(transaction=True)
        for name, value in fields.items():
            pipe.hincrby(key, name, value)
        pipe.expire(key, WINDOW_TTL_S)
        await pipe.execute()

    async def read(
        self, route: str, span_s: float
    ) -> tuple[int, int, dict[tuple[str, str], TrackWindow]]:
        """(first window start, end, merged counts) of the windows covering the last ``span_s``."""
        now = self._clock()
        last = window_start(now)
        first = window_start(now - min(span_s, WINDOW_TTL_S) + WINDOW_S)
        hashes = await self._hashes(route, range(first, last + WINDOW_S, WINDOW_S))
        return first, last + WINDOW_S, merge_windows(hashes)

    async def read_each(
        self, route: str, first: int, last: int
    ) -> list[tuple[int, dict[tuple[str, str], TrackWindow]]]:
        """Each window from start ``first`` to start ``last`` (inclusive), merged per track,
        the shadow copies under ``shadow_arm(track)``."""
        starts = range(first, last + WINDOW_S, WINDOW_S)
        hashes = await self._hashes(route, starts)
        return [(start, self.merge(h)) for start, h in zip(starts, hashes, strict=True)]

    async def raw_each(self, route: str, first: int, last: int) -> list[tuple[int, dict[str, str]]]:
        """Each window from start ``first`` to start ``last`` (inclusive), as stored."""
        starts = range(first, last + WINDOW_S, WINDOW_S)
        return list(zip(starts, await self._hashes(route, starts), strict=True))

    def now(self) -> float:
        return self._clock()

    def merge(self, fields: dict[str, str]) -> dict[tuple[str, str], TrackWindow]:
        """One window's fields as counts per (track, version), shadow copies included."""
        return merge_windows([fields], shadow=True)

    async def _hashes(self, route: str, starts: range) -> list[dict[str, str]]:
        """The raw fields of each window, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(self._keys.metrics_window(route, start))
        hashes: list[dict[str, str]] = await pipe.execute()
        return hashes
