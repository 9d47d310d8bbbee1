"""Counts of a rollout's arms since it started, kept in its record beyond the windows' TTL.

Metric windows live six hours in Redis; a rollout (or an A/B test) may run for days. Each look
reads the windows from the record's ``cursor`` on: windows old enough that every replica's
flush for them has landed (``GRACE_S`` after they end) are added for good into ``closed`` and
the cursor moves past them; younger ones are counted in this look's answer only and read
again next time. The totals therefore only grow, and sequential tests can take the
difference between two looks as the new interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from config.metrics import WINDOW_S, WINDOW_TTL_S, TrackWindow, shadow_arm, window_start
from control.metric_source import Merged, MetricSource

GRACE_S = 5.0
"""A window is closed this long after it ends (proxies flush every second)."""
SHADOW_SUFFIX = shadow_arm("")


def new_accumulator(started_at: float) -> dict[str, Any]:
    return {"cursor": window_start(started_at), "closed": {}, "offset": {}}


async def start(reader: MetricSource, route: str, arms: list[str], now: float) -> dict[str, Any]:
    """An accumulator that counts from ``now`` on, not from the start of ``now``'s window.

    The window ``now`` falls in already holds what was served before (under other weights,
    or before a test began): those counts are read once and kept as the ``offset`` that
    ``totals`` subtracts. Proxies flush every second, so at most about a second of earlier
    traffic can slip in."""
    accumulator = new_accumulator(now)
    before = await totals(reader, route, accumulator, arms, now)
    accumulator["offset"] = {name: asdict(w) for name, w in before.items()}
    return accumulator


async def totals(
    reader: MetricSource, route: str, accumulator: dict[str, Any], arms: list[str], now: float
) -> dict[str, TrackWindow]:
    """Each arm's counts from the start until now; moves ``accumulator`` past closed windows."""
    oldest = window_start(now - WINDOW_TTL_S + WINDOW_S)
    cursor = max(int(accumulator["cursor"]), oldest)
    last = window_start(now)
    windows = await reader.read_each(route, cursor, last) if cursor <= last else []
    closed = {name: from_dict(accumulator["closed"].get(name)) for name in arms}
    current = dict(closed)
    for start, merged in windows:
        done = start + WINDOW_S + GRACE_S <= now
        for name in arms:
            counts = arm(merged, name)
            current[name] = add(current[name], counts)
            if done:
                closed[name] = add(closed[name], counts)
        if done:
            cursor = start + WINDOW_S
    accumulator["cursor"] = cursor
    accumulator["closed"] = {name: asdict(w) for name, w in closed.items()}
    offset = accumulator.get("offset") or {}
    return {name: subtract(w, from_dict(offset.get(name))) for name, w in current.items()}


def from_dict(data: dict[str, Any] | None) -> TrackWindow:
    return TrackWindow() if data is None else TrackWindow(**data)


def arm(merged: Merged, track: str) -> TrackWindow:
    """One track's counts, every version of it summed; ``@<version>``: one version's counts,
    on whichever tracks served it live (``@`` is in no track name); ``shadow_arm(track)``:
    the shadow copies ``track`` answered."""
    total = TrackWindow()
    by_version = track.startswith("@")
    for (name, version), window in merged.items():
        live = not name.endswith(SHADOW_SUFFIX)
        if (version == track[1:] and live) if by_version else (name == track):
            total = add(total, window)
    return total


def subtract(a: TrackWindow, b: TrackWindow) -> TrackWindow:
    """``a - b``, never below zero (``b`` is a snapshot of counts that only grow)."""
    return _combine(a, b, lambda x, y: max(0, x - y))


def add(a: TrackWindow, b: TrackWindow) -> TrackWindow:
    return _combine(a, b, lambda x, y: x + y)


def _combine(a: TrackWindow, b: TrackWindow, op: Callable[[Any, Any], Any]) -> TrackWindow:
    def keyed(x: dict[str, int], y: dict[str, int]) -> dict[str, int]:
        return {k: op(x.get(k, 0), y.get(k, 0)) for k in {*x, *y}}

    return TrackWindow(
        requests=op(a.requests, b.requests),
        assigned=op(a.assigned, b.assigned),
        errors=keyed(a.errors, b.errors),
        client_gone=op(a.client_gone, b.client_gone),
        latency=[op(x, y) for x, y in zip(a.latency, b.latency, strict=True)],
        ttfb=[op(x, y) for x, y in zip(a.ttfb, b.ttfb, strict=True)],
        latency_sum_ms=op(a.latency_sum_ms, b.latency_sum_ms),
        ttfb_sum_ms=op(a.ttfb_sum_ms, b.ttfb_sum_ms),
        prompt_tokens=op(a.prompt_tokens, b.prompt_tokens),
        completion_tokens=op(a.completion_tokens, b.completion_tokens),
        usage_reported=op(a.usage_reported, b.usage_reported),
        prompt_sq=op(a.prompt_sq, b.prompt_sq),
        completion_sq=op(a.completion_sq, b.completion_sq),
        cross=op(a.cross, b.cross),
        feedback=keyed(a.feedback, b.feedback),
    )
