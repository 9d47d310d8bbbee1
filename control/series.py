"""The dashboard's time series: the fleet's 10 s windows summed into buckets, per version.

Pure: the windows are read by the caller (``control.series_api``). A span of ``n`` windows
becomes at most ``MAX_POINTS`` buckets of ``step_for(span)`` seconds each (5 min: 30 of 10 s,
1 h: 120 of 30 s, 6 h: 120 of 3 min). Percentiles come from each bucket's merged
histograms, as everywhere else (``config.metrics``); a bucket without requests has ``None``
where a rate or a percentile would be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from config.metrics import ERROR_CLASSES, WINDOW_S, TrackWindow, merge_versions

MAX_POINTS = 120

Window = tuple[int, Mapping[str, str]]
"""A window's start (Unix seconds, a multiple of ``WINDOW_S``) and its raw fields."""

SERIES = (
    "requests_per_s",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "tokens_per_request",
    "hallucination_rate",
    "user_satisfaction",
)
"""The series of each version, besides ``error_rate_by_class``."""


def step_for(span_s: int) -> int:
    """The bucket length for a span: a whole number of windows, at most ``MAX_POINTS``."""
    windows = max(1, span_s // WINDOW_S)
    return WINDOW_S * -(-windows // MAX_POINTS)


def bucket(windows: Sequence[Window], step_s: int, now: float) -> dict[str, Any]:
    """``times`` (each bucket's start) and ``versions``: each version's series, one value per
    bucket. ``windows`` are consecutive and start a bucket; the bucket that holds ``now``
    counts its requests per second over the seconds elapsed, not the whole step."""
    if not windows:
        return {"times": [], "versions": {}}
    first = windows[0][0]
    groups: dict[int, list[Mapping[str, str]]] = {}
    for start, fields in windows:
        groups.setdefault(first + (start - first) // step_s * step_s, []).append(fields)
    times = sorted(groups)
    merged = [merge_versions(groups[t]) for t in times]
    versions = sorted({version for counts in merged for version in counts})
    out: dict[str, Any] = {}
    for version in versions:
        points = [
            _point(counts.get(version), _elapsed(t, step_s, now))
            for t, counts in zip(times, merged, strict=True)
        ]
        series: dict[str, Any] = {name: [p[name] for p in points] for name in SERIES}
        series["error_rate_by_class"] = {
            kind: [p["by_class"].get(kind) for p in points]
            for kind in ERROR_CLASSES
            if any(p["by_class"].get(kind) for p in points)
        }
        out[version] = series
    return {"times": times, "versions": out}


def _elapsed(start: int, step_s: int, now: float) -> float:
    return max(1.0, min(float(step_s), now - start))


def _point(counts: TrackWindow | None, seconds: float) -> dict[str, Any]:
    """One bucket's figures, from the same summary ``GET /v1/routes/{route}/metrics`` gives."""
    summary = (counts or TrackWindow()).summary()
    requests = counts.requests if counts is not None else 0
    latency, ttft = summary["latency_ms"], summary["ttfb_ms"]
    errors = summary["errors_by_class"]
    assert isinstance(latency, dict) and isinstance(ttft, dict) and isinstance(errors, dict)
    return {
        "requests_per_s": requests / seconds,
        "error_rate": summary["error_rate"],
        "by_class": {kind: n / requests for kind, n in errors.items()} if requests else {},
        "latency_p50_ms": latency["p50"],
        "latency_p95_ms": latency["p95"],
        "ttft_p50_ms": ttft["p50"],
        "ttft_p95_ms": ttft["p95"],
        "tokens_per_request": summary["tokens_per_request"],
        "hallucination_rate": summary["hallucination_rate"],
        "user_satisfaction": summary["user_satisfaction"],
    }
