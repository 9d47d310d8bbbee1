"""Where the rollout runner reads what the fleet served: a Protocol, so that a source other
than the proxies' Redis windows (``control.windows.WindowReader``, the one today) can stand
in without the runner, the looks or the accumulators knowing.

A source answers per (track, version) with mergeable counts (``config.metrics.TrackWindow``),
one entry per window of ``config.metrics.WINDOW_S`` seconds: the sequential tests consume them
interval by interval, and windows never change once closed (``control.accumulate``).
"""

from __future__ import annotations

from typing import Protocol

from config.metrics import TrackWindow

Merged = dict[tuple[str, str], TrackWindow]
"""Counts per (track, version)."""


class MetricSource(Protocol):
    async def read(self, route: str, span_s: float) -> tuple[int, int, Merged]:
        """(first window start, end, counts merged) over the last ``span_s`` seconds."""
        ...

    async def read_each(self, route: str, first: int, last: int) -> list[tuple[int, Merged]]:
        """Each window from start ``first`` to start ``last`` (inclusive), merged per track;
        shadow copies under ``config.metrics.shadow_arm(track)``."""
        ...
