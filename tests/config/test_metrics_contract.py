"""The shared measurement contract: window fields merge exactly; percentiles from buckets."""

from __future__ import annotations

from config.metrics import (
    BUCKET_BOUNDS_MS,
    LATENCY_BUCKETS,
    field_name,
    merge_windows,
    percentile,
    window_start,
)


def test_window_start_aligns_to_ten_seconds() -> None:
    assert window_start(1_000_009.9) == 1_000_000
    assert window_start(1_000_010.0) == 1_000_010


def test_windows_from_several_replicas_add_up() -> None:
    a = {
        field_name("stable", "v1", "requests"): "3",
        field_name("stable", "v1", "err:timeout"): "1",
        field_name("stable", "v1", "lat:4"): "3",
        field_name("stable", "v1", "tok:prompt"): "30",
    }
    b = {
        field_name("stable", "v1", "requests"): "2",
        field_name("stable", "v1", "lat:40"): "2",
        field_name("canary", "v2", "requests"): "1",
        "garbage": "x",
        field_name("stable", "v1", "lat:999"): "5",
    }
    merged = merge_windows([a, b])
    stable = merged[("stable", "v1")]
    assert (stable.requests, stable.errors["timeout"], stable.prompt_tokens) == (5, 1, 30)
    assert stable.latency[4] == 3 and stable.latency[40] == 2 and sum(stable.latency) == 5
    assert merged[("canary", "v2")].requests == 1


def test_percentiles_come_from_merged_buckets() -> None:
    counts = [0] * LATENCY_BUCKETS
    counts[4] = 90  # <= 2 ms
    counts[40] = 9  # <= 1024 ms
    counts[60] = 1  # <= 32768 ms
    assert percentile(counts, 0.5) == BUCKET_BOUNDS_MS[4]
    assert percentile(counts, 0.95) == BUCKET_BOUNDS_MS[40]
    assert percentile(counts, 0.995) == BUCKET_BOUNDS_MS[60]
    assert percentile([0] * LATENCY_BUCKETS, 0.5) is None
    over = [0] * LATENCY_BUCKETS
    over[-1] = 1
    assert percentile(over, 0.5) == float("inf")


def test_summary_rates() -> None:
    merged = merge_windows(
        [
            {
                field_name("t", "v", "requests"): "4",
                field_name("t", "v", "err:cut"): "1",
                field_name("t", "v", "usage"): "2",
                field_name("t", "v", "tok:prompt"): "10",
                field_name("t", "v", "tok:completion"): "6",
            }
        ]
    )
    summary = merged[("t", "v")].summary()
    assert summary["error_rate"] == 0.25
    assert summary["tokens_per_request"] == 8
