"""Flushes the proxy's counts into shared metric windows in Redis, once a second.

Every second the flusher takes the difference between each track's counters and what it last
sent, files it under the current 10 s window, and sends everything pending in one pipeline of
``HINCRBY``s. Windows from every replica add up, so the control plane reads fleet totals and
merged histograms. Deltas are assigned to the window of the flush that carries them, so a
count may land up to one flush interval late (one window boundary at most).

If Redis is down the deltas wait and go out with the next successful flush. At most
``max_pending_windows`` windows wait; older ones are dropped and the requests they held are
counted in ``dropped_requests``. Counting on the request path never waits for any of this.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from config.keys import Keys
from config.metrics import BUCKETS, ERROR_CLASSES, WINDOW_TTL_S, field_name, window_start
from proxy.stats import StatsRegistry, TrackStats

log = logging.getLogger("splitgate.proxy.flusher")

Counts = dict[str, float]


def counts_of(s: TrackStats) -> Counts:
    """Every counter of one track as ``metric → value`` (the window field suffixes)."""
    out: Counts = {"requests": s.requests, "assigned": s.assigned, "client_gone": s.client_gone}
    for name in ERROR_CLASSES:
        out[f"err:{name}"] = s.errors[name]
    for i in range(BUCKETS):
        out[f"lat:{i}"] = s.latency[i]
        out[f"ttfb:{i}"] = s.ttfb[i]
    out["lat_sum_ms"] = s.latency_sum_ms
    out["ttfb_sum_ms"] = s.ttfb_sum_ms
    out["tok:prompt"] = s.prompt_tokens
    out["tok:completion"] = s.completion_tokens
    out["usage"] = s.usage_reported
    out.update(s.feedback)  # already named fb:…
    return out


class MetricsFlusher:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        stats: StatsRegistry,
        *,
        interval_s: float = 1.0,
        max_pending_windows: int = 360,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._stats = stats
        self._interval_s = interval_s
        self._max_pending = max_pending_windows
        self._clock = clock
        self._sent: dict[int, Counts] = {}
        self.pending: dict[tuple[str, int], dict[str, float]] = {}
        """(route, window start) → field → delta not yet in Redis."""
        self.dropped_requests = 0
        self.failures = 0
        self.flushes = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except (TimeoutError, RedisError, OSError) as exc:
                self.failures += 1
                log.debug("metrics flush failed (%s); %d windows wait", exc, len(self.pending))

    def collect(self) -> None:
        """Move every counter's growth since the last collect into the pending windows."""
        start = window_start(self._clock())
        for s in self._stats:
            now = counts_of(s)
            before = self._sent.get(id(s))
            self._sent[id(s)] = now
            window = self.pending.setdefault((s.route, start), {})
            for metric, value in now.items():
                delta = value - (before.get(metric, 0) if before is not None else 0)
                if delta:
                    name = field_name(s.track, s.version, metric)
                    window[name] = window.get(name, 0) + delta
            if not window:
                del self.pending[(s.route, start)]
        self._bound()

    def _bound(self) -> None:
        while len(self.pending) > self._max_pending:
            oldest = min(self.pending, key=lambda k: k[1])
            window = self.pending.pop(oldest)
            self.dropped_requests += int(
                sum(v for k, v in window.items() if k.endswith("\trequests"))
            )

    async def flush(self) -> None:
        """Collect, then send every pending window in one pipeline; keep them if it fails."""
        self.collect()
        if not self.pending:
            return
        # One MULTI/EXEC: a broken connection applies all of it or none, so a retry never
        # counts twice (unless EXEC ran and only its reply was lost).
        pipe = self._redis.pipeline(transaction=True)
        for (route, start), fields in self.pending.items():
            key = self._keys.metrics_window(route, start)
            for name, delta in fields.items():
                if name.endswith("_sum_ms"):  # the only float fields
                    pipe.hincrbyfloat(key, name, delta)
                else:
                    pipe.hincrby(key, name, int(delta))
            pipe.expire(key, WINDOW_TTL_S)
        await pipe.execute()
        self.pending.clear()
        self.flushes += 1
