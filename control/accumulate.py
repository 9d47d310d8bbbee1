"""Counts of a rollout's arms since it started, kept in its record beyond the windows' TTL.

Metric windows live six hours in Redis; a rollout (or an A/B test) may run for days. Each look
reads the windows from the record's ``cursor`` on: windows old enough that every replica's
flush for them has landed (``GRACE_S`` after they end) are added for good into ``closed`` and
the cursor moves past them; younger ones are counted in this look's answer only and read
again next time. The totals therefore only grow, and sequential tests can take the
difference between two looks as the new interval.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from config.metrics import WINDOW_S, WINDOW_TTL_S, TrackWindow, window_start
from control.windows import WindowReader

GRACE_S = 5.0
"""A window is closed this long after it ends (proxies flush every second)."""

Merged = dict[tuple[str, str], TrackWindow]


def new_accumulator(started_at: float) -> dict[str, Any]:
    return {"cursor": window_start(started_at), "closed": {}}


async def totals(
    reader: WindowReader, route: str, accumulator: dict[str, Any], arms: list[str], now: float
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
    return current


def from_dict(data: dict[str, Any] | None) -> TrackWindow:
    return TrackWindow() if data is None else TrackWindow(**data)


def arm(merged: Merged, track: str) -> TrackWindow:
    """One track's counts, every version of it summed."""
    total = TrackWindow()
    for (name, _), window in merged.items():
        if name == track:
            total = add(total, window)
    return total


def add(a: TrackWindow, b: TrackWindow) -> TrackWindow:
    return replace(
        a,
        requests=a.requests + b.requests,
        assigned=a.assigned + b.assigned,
        errors={k: a.errors.get(k, 0) + b.errors.get(k, 0) for k in {*a.errors, *b.errors}},
        client_gone=a.client_gone + b.client_gone,
        latency=[x + y for x, y in zip(a.latency, b.latency, strict=True)],
        ttfb=[x + y for x, y in zip(a.ttfb, b.ttfb, strict=True)],
        latency_sum_ms=a.latency_sum_ms + b.latency_sum_ms,
        ttfb_sum_ms=a.ttfb_sum_ms + b.ttfb_sum_ms,
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        usage_reported=a.usage_reported + b.usage_reported,
        feedback={
            k: a.feedback.get(k, 0) + b.feedback.get(k, 0) for k in {*a.feedback, *b.feedback}
        },
    )
