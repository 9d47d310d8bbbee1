"""Per-track measurements, counted on the request path with no await, no lock and no I/O.

Each (route, track, version) has one ``TrackStats``: plain integer counters and fixed-bucket
histograms. Requests a feature flag released count apart, in a ``TrackStats`` of their own
with ``flag`` set, so the released audience can be read alone; readers that want a track's
total add them up (the flusher's window fields, keyed by track and version, do so by
construction). Buckets are log-spaced (four per doubling, 1 ms to about 19 minutes) and the same
in every process, so histograms from several replicas add up exactly and percentiles come
from the merged counts, never from averaging percentiles. Readers (the Prometheus endpoint,
the Redis flusher) take snapshots; the request path only adds.

Error classes: ``connect`` (no connection to any endpoint), ``timeout`` (no response head in
time, or an idle gap mid-body), ``upstream_5xx``, ``upstream_429``, ``proxy_4xx`` (the proxy
refused the request: 400, 404, 408, 413 …), ``cut`` (the upstream broke mid-body),
``truncated`` (an SSE stream ended cleanly but with neither ``[DONE]`` nor a
``finish_reason``). A client that went away is counted apart, as ``client_gone``.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterator
from typing import NamedTuple

from config.metrics import BUCKET_BOUNDS_MS, ERROR_CLASSES, LATENCY_BUCKETS

__all__ = [
    "BUCKET_BOUNDS_MS",
    "ERROR_CLASSES",
    "LATENCY_BUCKETS",
    "StatsRegistry",
    "TrackStats",
    "read_tail",
]


def bucket_index(ms: float) -> int:
    return bisect_left(BUCKET_BOUNDS_MS, ms)


class TrackStats:
    """Counters of one route/track/version; every method is O(1) and never suspends."""

    __slots__ = (
        "assigned",
        "client_gone",
        "completion_sq",
        "completion_tokens",
        "cross",
        "errors",
        "feedback",
        "flag",
        "latency",
        "latency_sum_ms",
        "mode",
        "prompt_sq",
        "prompt_tokens",
        "requests",
        "route",
        "track",
        "ttfb",
        "ttfb_sum_ms",
        "usage_reported",
        "version",
    )

    def __init__(
        self, route: str, track: str, version: str, flag: str = "", mode: str = "live"
    ) -> None:
        self.route = route
        self.track = track
        self.version = version
        self.flag = flag
        """The feature flag whose releases these are; empty for every other request."""
        self.mode = mode
        """``live`` (requests users sent) or ``shadow`` (the copies a route mirrored)."""
        self.requests = 0
        self.assigned = 0
        """Requests the weighted split sent here (not forced, counted before any fallback):
        what the sample-ratio check compares with the weights."""
        self.errors = dict.fromkeys(ERROR_CLASSES, 0)
        self.client_gone = 0
        self.latency = [0] * LATENCY_BUCKETS
        self.ttfb = [0] * LATENCY_BUCKETS
        self.latency_sum_ms = 0.0
        self.ttfb_sum_ms = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.usage_reported = 0
        self.prompt_sq = 0
        self.completion_sq = 0
        self.cross = 0
        self.feedback: dict[str, int] = {}

    def record(self, total_ms: float, ttfb_ms: float | None, error: str | None) -> None:
        self.requests += 1
        self.latency[bisect_left(BUCKET_BOUNDS_MS, total_ms)] += 1
        self.latency_sum_ms += total_ms
        if ttfb_ms is not None:
            self.ttfb[bisect_left(BUCKET_BOUNDS_MS, ttfb_ms)] += 1
            self.ttfb_sum_ms += ttfb_ms
        if error is not None:
            if error == "client_gone":
                self.client_gone += 1
            else:
                self.errors[error] += 1

    def add_feedback(self, fields: dict[str, int]) -> None:
        for name, value in fields.items():
            self.feedback[name] = self.feedback.get(name, 0) + value

    def add_usage(self, prompt: int, completion: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.usage_reported += 1
        self.prompt_sq += prompt * prompt
        self.completion_sq += completion * completion
        self.cross += prompt * completion


class StatsRegistry:
    """One ``TrackStats`` per route/track/version (and flag) for the life of the process.

    A table swap keeps the counters of every track that still exists: the registry hands the
    same object to each table generation, so nothing counted is lost to a weight change.
    """

    def __init__(self) -> None:
        self._stats: dict[tuple[str, str, str, str, str], TrackStats] = {}

    def get(
        self, route: str, track: str, version: str, flag: str = "", mode: str = "live"
    ) -> TrackStats:
        key = (route, track, version, flag, mode)
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = TrackStats(route, track, version, flag, mode)
        return stats

    def __iter__(self) -> Iterator[TrackStats]:
        return iter(list(self._stats.values()))


class BodyFacts(NamedTuple):
    """What the end of a response body says: token usage, and whether a stream finished."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finished: bool = False


_USAGE = b'"usage"'
_DONE = b"data: [DONE]"
_FINISH = b'"finish_reason"'
_decoder = json.JSONDecoder()


def read_tail(tail: bytes, sse: bool) -> BodyFacts:
    """Token usage and completion from the last bytes of a body (OpenAI shapes, JSON or SSE).

    Only the tail is kept while relaying (the last two chunks, no copies per chunk), so this
    looks for the ``usage`` object and the stream's end there and gives up quietly otherwise.
    """
    prompt = completion = None
    at = tail.rfind(_USAGE)
    if at >= 0:
        brace = tail.find(b"{", at)
        if brace >= 0:
            try:
                usage, _ = _decoder.raw_decode(tail[brace:].decode("utf-8", "replace"))
            except ValueError:
                usage = None
            if isinstance(usage, dict):
                p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
                prompt = p if isinstance(p, int) else None
                completion = c if isinstance(c, int) else None
    # The stream's end is at the end: rfind meets it first, where `in` would scan every event.
    finished = not sse or tail.rfind(_DONE) >= 0 or _finish_reason(tail)
    return BodyFacts(prompt, completion, finished)


def _finish_reason(tail: bytes) -> bool:
    at = tail.rfind(_FINISH)
    while at >= 0:
        rest = tail[at + len(_FINISH) :].lstrip(b" :")
        if rest and not rest.startswith(b"null"):
            return True
        at = tail.rfind(_FINISH, 0, at)
    return False
