"""Flushes the proxy's counts into shared metric windows in Redis, once a second.

Every second the flusher takes the difference between each track's counters and what it last
sent, files it under the current 10 s window, and sends everything pending in one script
call: atomic (all of it lands or none, so a retry never counts twice, unless the script ran
and only its reply was lost) and one round trip, on a single server, Sentinel or a Cluster
alike, however long the backlog a Redis outage left. Windows from every replica add up, so the control plane reads fleet
totals and merged histograms. Deltas are assigned to the window of the flush that carries them, so a
count may land up to one flush interval late (one window boundary at most).

If Redis is down the deltas wait and go out with the next successful flush. At most
``max_pending_windows`` windows wait; older ones are dropped and the requests they held are
counted in ``dropped_requests``. Counting on the request path never waits for any of this.

The same loop writes the routing decisions the proxy kept (``proxy.decision_writer``) and the
shadow pairs (``proxy.shadow_pairs``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from config.keys import Keys
from config.metrics import (
    ERROR_CLASSES,
    LATENCY_BUCKETS,
    WINDOW_TTL_S,
    field_name,
    flag_field_name,
    shadow_field_name,
    window_start,
)
from proxy.decision_writer import DecisionWriter
from proxy.redis_client import RedisClient
from proxy.shadow_pairs import PairWriter
from proxy.stats import StatsRegistry, TrackStats

log = logging.getLogger("splitgate.proxy.flusher")

# Adds every field of every pending window in one script call: far cheaper to send than an
# HINCRBY each, atomic, and one round trip on a single server and on a Cluster alike (the
# window keys share the namespace's hash tag, so one slot holds them all). ARGV: the TTL, then
# per key the number of its fields and its field, delta pairs. The metric is the third
# tab-separated part of a field (a per-flag or shadow field has more parts after it).
_ADD_WINDOWS = """
local at = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  for i = at, at + 2 * n - 1, 2 do
    local metric = string.match(ARGV[i], '^[^\\t]*\\t[^\\t]*\\t([^\\t]*)')
    if metric and string.sub(metric, -7) == '_sum_ms' then
      redis.call('HINCRBYFLOAT', KEYS[k], ARGV[i], ARGV[i + 1])
    else
      redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    end
  end
  at = at + 2 * n
  redis.call('EXPIRE', KEYS[k], ARGV[1])
end
return #KEYS
"""

METRICS: tuple[str, ...] = (
    "requests",
    "assigned",
    "client_gone",
    *(f"err:{name}" for name in ERROR_CLASSES),
    *(f"lat:{i}" for i in range(LATENCY_BUCKETS)),
    *(f"ttfb:{i}" for i in range(LATENCY_BUCKETS)),
    "lat_sum_ms",
    "ttfb_sum_ms",
    "tok:prompt",
    "tok:completion",
    "usage",
    "tok:prompt_sq",
    "tok:completion_sq",
    "tok:cross",
)
"""The window field suffix of each value ``snapshot`` returns, in the same order."""


def _args(windows: list[dict[str, float]]) -> list[str | float | int]:
    """The script's arguments: the TTL, then per window its number of fields and its
    field, delta pairs (counts as integers)."""
    args: list[str | float | int] = [WINDOW_TTL_S]
    for fields in windows:
        args.append(len(fields))
        for name, delta in fields.items():
            args.append(name)
            args.append(delta if _is_sum(name) else int(delta))
    return args


def _is_sum(name: str) -> bool:
    """A float field (``lat_sum_ms``, ``ttfb_sum_ms``), in a track's or a flag's fields."""
    return name.split("\t", 3)[2].endswith("_sum_ms")


def _name_of(s: TrackStats) -> Callable[[str, str, str], str]:
    """Shadow copies count in fields of their own, never in the track's totals."""
    return shadow_field_name if s.mode == "shadow" else field_name


def snapshot(s: TrackStats) -> list[float]:
    return [
        s.requests,
        s.assigned,
        s.client_gone,
        *(s.errors[name] for name in ERROR_CLASSES),
        *s.latency,
        *s.ttfb,
        s.latency_sum_ms,
        s.ttfb_sum_ms,
        s.prompt_tokens,
        s.completion_tokens,
        s.usage_reported,
        s.prompt_sq,
        s.completion_sq,
        s.cross,
    ]


class MetricsFlusher:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        stats: StatsRegistry,
        *,
        interval_s: float = 1.0,
        max_pending_windows: int = 360,
        clock: Callable[[], float] = time.time,
        decisions: DecisionWriter | None = None,
        pairs: PairWriter | None = None,
    ) -> None:
        self._redis = redis
        self._decisions = decisions
        self._pairs = pairs
        self._keys = keys
        self._stats = stats
        self._interval_s = interval_s
        self._max_pending = max_pending_windows
        self._clock = clock
        self._sent: dict[int, tuple[list[float], dict[str, int]]] = {}
        self._names: dict[int, list[str]] = {}
        self._add_windows = redis.register_script(_ADD_WINDOWS)
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
            try:
                await self.flush_decisions()
            except (TimeoutError, RedisError, OSError) as exc:
                log.debug("decision log flush failed (%s); its batch is dropped", exc)
            except Exception:  # a bug in one batch must not stop the metrics
                log.exception("decision log flush failed; its batch is dropped")
            try:
                await self.flush_pairs()
            except (TimeoutError, RedisError, OSError) as exc:
                log.debug("shadow pairs flush failed (%s); its batch is dropped", exc)
            except Exception:
                log.exception("shadow pairs flush failed; its batch is dropped")

    async def flush_decisions(self) -> None:
        """Send the routing decisions kept since the last flush (``proxy.decision_writer``)."""
        if self._decisions is not None:
            await self._decisions.flush()

    async def flush_pairs(self) -> None:
        """Send the shadow pairs completed since the last flush (``proxy.shadow_pairs``)."""
        if self._pairs is not None:
            await self._pairs.flush()

    def collect(self) -> None:
        """Move every counter's growth since the last collect into the pending windows."""
        start = window_start(self._clock())
        for s in self._stats:
            key = id(s)
            names = self._names.get(key)
            if names is None:
                name_of = _name_of(s)
                names = self._names[key] = [name_of(s.track, s.version, m) for m in METRICS]
            values, feedback = snapshot(s), dict(s.feedback)
            before_values, before_feedback = self._sent.get(key, (None, {}))
            self._sent[key] = (values, feedback)
            if before_values == values and before_feedback == feedback:
                continue
            window = self.pending.setdefault((s.route, start), {})
            old = before_values or [0.0] * len(values)
            for name, value, was in zip(names, values, old, strict=True):
                if value != was:
                    window[name] = window.get(name, 0) + value - was
            for metric, value in feedback.items():
                delta = value - before_feedback.get(metric, 0)
                if delta:
                    name = _name_of(s)(s.track, s.version, metric)
                    window[name] = window.get(name, 0) + delta
            if s.flag:  # the released audience alone, besides the track's totals above
                for metric, value, was in zip(METRICS, values, old, strict=True):
                    if value != was:
                        name = flag_field_name(s.track, s.version, metric, s.flag)
                        window[name] = window.get(name, 0) + value - was
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
        """Collect, then send every pending window; keep what was not sent if it fails."""
        self.collect()
        if not self.pending:
            return
        sending, self.pending = self.pending, {}
        keys = [self._keys.metrics_window(route, start) for route, start in sending]
        try:
            await self._add_windows(keys=keys, args=_args(list(sending.values())))
        except BaseException:
            for key, fields in sending.items():  # back, beside what was collected meanwhile
                window = self.pending.setdefault(key, {})
                for name, delta in fields.items():
                    window[name] = window.get(name, 0) + delta
            self._bound()
            raise
        self.flushes += 1
