"""The measurement contract between the planes: buckets, error classes, and metric windows.

Proxies add their counts into per-route windows in Redis; the control plane reads any span of
windows and merges them. Both sides use the bucket bounds and field names defined here, so
counts from every replica add up exactly.

Window hash ``{ns}:metrics:<route>:<window start, unix seconds>``, one field per count:
``<track>\\t<version>\\t<metric>`` where metric is ``requests``, ``assigned`` (sent there by the
weighted split, not forced), ``err:<class>``,
``client_gone``, ``lat:<bucket>``, ``ttfb:<bucket>``, ``lat_sum_ms``, ``ttfb_sum_ms``,
``tok:prompt``, ``tok:completion``, ``usage``, ``tok:prompt_sq``, ``tok:completion_sq``,
``tok:cross`` (per request with usage: prompt², completion², prompt × completion — the
second moments that bound a mean of tokens or of any priced mix of them), or feedback: ``fb:hallucination_yes``,
``fb:hallucination_no``, ``fb:rating_sum``, ``fb:rating_sq`` (squares, for a variance),
``fb:rating_n``, ``fb:rating_bad`` (ratings of 1 or 2), ``fb:comments``.

Requests a feature flag released count in those fields like any other: they are the track's
totals. Per-flag counts take a fourth part, ``<track>\t<version>\t<metric>\t<flag>``, which
``merge_windows`` skips (readers that predate flags see the totals unchanged) and
``merge_flag_windows`` reads. The proxy's flusher writes both.

Shadow copies (``config.shadow``) count under a fifth part, ``<track>\t<version>\t<metric>\t\tshadow``:
never in the track's totals, skipped by both readers above; ``merge_windows(shadow=True)``
reads them as the pseudo-track ``<track>~shadow`` (``shadow_arm``; ``~`` is in no name).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

ERROR_CLASSES = (
    "connect",
    "timeout",
    "upstream_5xx",
    "upstream_429",
    "proxy_4xx",
    "cut",
    "truncated",
)

BUCKET_BOUNDS_MS: tuple[float, ...] = tuple(round(2 ** (i / 4), 3) for i in range(0, 81))
"""Upper bounds (inclusive) in milliseconds: 1, 1.189, 1.414, … 1,048,576 (about 17.5 min)."""

LATENCY_BUCKETS = len(BUCKET_BOUNDS_MS) + 1
"""Histogram buckets for latency and TTFB (not the routes' hash buckets,
``config.schema.HASH_BUCKETS``): one more than bounds, the last counts everything above."""

WINDOW_S = 10
"""Length of one metric window in seconds."""

WINDOW_TTL_S = 6 * 3600


def bucket_index_ms(ms: float) -> int:
    """The bucket a duration in milliseconds falls in (bounds are inclusive)."""
    return bisect_left(BUCKET_BOUNDS_MS, ms)


def window_start(unix_seconds: float) -> int:
    return int(unix_seconds // WINDOW_S) * WINDOW_S


def field_name(track: str, version: str, metric: str) -> str:
    return f"{track}\t{version}\t{metric}"


def flag_field_name(track: str, version: str, metric: str, flag: str) -> str:
    """The field counting ``metric`` of the requests ``flag`` released (besides the total)."""
    return f"{track}\t{version}\t{metric}\t{flag}"


SHADOW_MODE = "shadow"


def shadow_field_name(track: str, version: str, metric: str) -> str:
    """The field counting ``metric`` of the shadow copies ``track`` answered."""
    return f"{track}\t{version}\t{metric}\t\t{SHADOW_MODE}"


def shadow_arm(track: str) -> str:
    """The name the shadow copies of ``track`` go by in ``merge_windows(shadow=True)``."""
    return f"{track}~{SHADOW_MODE}"


@dataclass
class TrackWindow:
    """Counts of one track and version, summed over any number of windows and replicas."""

    requests: int = 0
    assigned: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CLASSES, 0))
    client_gone: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    ttfb: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    latency_sum_ms: float = 0.0
    ttfb_sum_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_reported: int = 0
    prompt_sq: int = 0
    completion_sq: int = 0
    cross: int = 0
    """Σ prompt × completion over the requests that reported usage."""
    feedback: dict[str, int] = field(default_factory=dict)

    def add_field(self, metric: str, value: float) -> None:
        kind, _, rest = metric.partition(":")
        if metric == "requests":
            self.requests += int(value)
        elif metric == "assigned":
            self.assigned += int(value)
        elif kind == "err" and rest in self.errors:
            self.errors[rest] += int(value)
        elif kind in ("lat", "ttfb") and rest.isdigit() and int(rest) < LATENCY_BUCKETS:
            (self.latency if kind == "lat" else self.ttfb)[int(rest)] += int(value)
        elif metric == "client_gone":
            self.client_gone += int(value)
        elif metric == "lat_sum_ms":
            self.latency_sum_ms += value
        elif metric == "ttfb_sum_ms":
            self.ttfb_sum_ms += value
        elif metric == "tok:prompt":
            self.prompt_tokens += int(value)
        elif metric == "tok:completion":
            self.completion_tokens += int(value)
        elif metric == "usage":
            self.usage_reported += int(value)
        elif metric == "tok:prompt_sq":
            self.prompt_sq += int(value)
        elif metric == "tok:completion_sq":
            self.completion_sq += int(value)
        elif metric == "tok:cross":
            self.cross += int(value)
        elif kind == "fb":
            self.feedback[rest] = self.feedback.get(rest, 0) + int(value)

    def summary(self) -> dict[str, object]:
        errors = sum(self.errors.values())
        return {
            "requests": self.requests,
            "errors": errors,
            "error_rate": errors / self.requests if self.requests else None,
            "errors_by_class": dict(self.errors),
            "client_gone": self.client_gone,
            "latency_ms": percentiles(self.latency),
            "ttfb_ms": percentiles(self.ttfb),
            "tokens_per_request": (
                (self.prompt_tokens + self.completion_tokens) / self.usage_reported
                if self.usage_reported
                else None
            ),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            **self._feedback_summary(),
        }

    def _feedback_summary(self) -> dict[str, object]:
        fb = self.feedback
        judged = fb.get("hallucination_yes", 0) + fb.get("hallucination_no", 0)
        rated = fb.get("rating_n", 0)
        # A shadow pair's score: 1 when the shadow's answer won, 0.5 for a tie, 0 lost.
        better, same = fb.get("shadow_better", 0), fb.get("shadow_same", 0)
        pairs = better + same + fb.get("shadow_worse", 0)
        return {
            "hallucination_rate": fb.get("hallucination_yes", 0) / judged if judged else None,
            "hallucination_judged": judged,
            "user_satisfaction": fb.get("rating_sum", 0) / rated if rated else None,
            "ratings": rated,
            "comments": fb.get("comments", 0),
            "shadow_win_rate": (better + same / 2) / pairs if pairs else None,
            "shadow_judged": pairs,
        }


def merge_windows(
    hashes: Sequence[Mapping[str, str]], *, shadow: bool = False
) -> dict[tuple[str, str], TrackWindow]:
    """Sum window hashes (from any replicas and windows) per (track, version); with
    ``shadow``, the shadow copies too, per (``shadow_arm(track)``, version)."""
    merged: dict[tuple[str, str], TrackWindow] = {}
    for track, version, metric, number in _track_fields(hashes, shadow):
        merged.setdefault((track, version), TrackWindow()).add_field(metric, number)
    return merged


def merge_versions(hashes: Sequence[Mapping[str, str]]) -> dict[str, TrackWindow]:
    """Sum window hashes per version, whichever tracks served it."""
    merged: dict[str, TrackWindow] = {}
    for _, version, metric, number in _track_fields(hashes):
        merged.setdefault(version, TrackWindow()).add_field(metric, number)
    return merged


def _track_fields(
    hashes: Sequence[Mapping[str, str]], shadow: bool = False
) -> Iterator[tuple[str, str, str, float]]:
    """(track, version, metric, value) of every per-track field (not the per-flag ones);
    with ``shadow``, the shadow copies' fields too, under ``shadow_arm(track)``."""
    for fields in hashes:
        for name, raw in fields.items():
            parts = name.split("\t")
            if len(parts) != 3:
                if not (shadow and len(parts) == 5 and parts[4] == SHADOW_MODE and not parts[3]):
                    continue
                parts = [shadow_arm(parts[0]), parts[1], parts[2]]
            try:
                number = float(raw)
            except ValueError:
                continue
            yield parts[0], parts[1], parts[2], number


def merge_flag_windows(
    hashes: Sequence[Mapping[str, str]],
) -> dict[tuple[str, str, str], TrackWindow]:
    """Sum the per-flag fields of window hashes per (flag, track, version)."""
    merged: dict[tuple[str, str, str], TrackWindow] = {}
    for fields in hashes:
        for name, raw in fields.items():
            parts = name.split("\t")
            if len(parts) != 4 or not parts[3]:
                continue
            try:
                number = float(raw)
            except ValueError:
                continue
            key = (parts[3], parts[0], parts[1])
            merged.setdefault(key, TrackWindow()).add_field(parts[2], number)
    return merged


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-quantile; None without samples.

    Above the top bound the answer is ``inf``: the honest statement of what a histogram knows.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank and count:
            return BUCKET_BOUNDS_MS[index] if index < len(BUCKET_BOUNDS_MS) else float("inf")
    return float("inf")


def percentile_index(counts: Sequence[int], q: float) -> int | None:
    """The index of the bucket holding the q-quantile; None without samples."""
    total = sum(counts)
    if total == 0:
        return None
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= q * total and count:
            return index
    return len(counts) - 1


def percentiles(counts: Sequence[int]) -> dict[str, float | None]:
    return {name: percentile(counts, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
