"""One /metrics for every worker: the merge of the workers' snapshots, by hand."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from proxy.worker_metrics import merge

DEAD = 2**22 + 12345  # above pid_max's default: no such process


def snapshot(worker: str, requests: float, generation: float, flushes: float) -> str:
    registry = CollectorRegistry()
    Counter("splitgate_requests", "requests", ["track"], registry=registry).labels("a").inc(
        requests
    )
    Gauge("splitgate_routing_generation", "generation", registry=registry).set(generation)
    Gauge("splitgate_metrics_flush_failures", "failures", registry=registry).set(flushes)
    Gauge("splitgate_track_weight", "weight", ["track"], registry=registry).labels("a").set(100)
    return generate_latest(registry).decode()


def values(
    snapshots: list[tuple[str, str]],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in merge(snapshots)
        for s in family.samples
    }


def test_counters_sum_over_every_worker_and_state_gauges_get_a_worker_label() -> None:
    me = os.getpid()
    merged = values(
        [
            (f"w1-{me}", snapshot("1", 7, 12, 1)),
            (f"w2-{me}", snapshot("2", 5, 11, 2)),
            (f"w2-{DEAD}", snapshot("2", 3, 9, 4)),  # the worker 2 this one replaced
        ]
    )
    assert merged[("splitgate_requests_total", (("track", "a"),))] == 15  # the dead one's too
    assert merged[("splitgate_routing_generation", (("worker", "1"),))] == 12
    assert merged[("splitgate_routing_generation", (("worker", "2"),))] == 11  # the live one
    assert merged[("splitgate_metrics_flush_failures", ())] == 7  # counts: like the counters
    assert merged[("splitgate_track_weight", (("track", "a"),))] == 100  # once, no label
    assert not any(name.endswith("_created") for name, _ in merged)
