"""Counting primitives: bucket layout, O(1) records, and reading usage and the end of a body."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest

from proxy.stats import (
    BUCKET_BOUNDS_MS,
    LATENCY_BUCKETS,
    StatsRegistry,
    TrackStats,
    bucket_index,
    read_tail,
)


def test_buckets_are_log_spaced_and_fixed() -> None:
    assert (
        BUCKET_BOUNDS_MS[0] == 1.0 and BUCKET_BOUNDS_MS[4] == 2.0 and BUCKET_BOUNDS_MS[40] == 1024.0
    )
    assert LATENCY_BUCKETS == 82
    ratios = {round(b / a, 3) for a, b in pairwise(BUCKET_BOUNDS_MS)}
    assert ratios <= {1.189, 1.19, 1.188}


@pytest.mark.parametrize(
    ("ms", "index"),
    [(0.0, 0), (1.0, 0), (1.01, 1), (2.0, 4), (1024.0, 40), (1025, 41), (10**9, 81)],
)
def test_bucket_index_is_inclusive_of_the_upper_bound(ms: float, index: int) -> None:
    assert bucket_index(ms) == index


def test_record_counts_requests_errors_and_both_histograms() -> None:
    s = TrackStats("chat", "canary", "v2")
    s.record(10.0, 3.0, None)
    s.record(2000.0, None, "timeout")
    s.record(5.0, 5.0, "client_gone")
    assert s.requests == 3
    assert s.errors["timeout"] == 1 and sum(s.errors.values()) == 1
    assert s.client_gone == 1
    assert sum(s.latency) == 3 and sum(s.ttfb) == 2
    assert s.latency[bucket_index(2000.0)] == 1
    assert s.latency_sum_ms == 2015.0


def test_registry_keeps_one_object_per_route_track_version() -> None:
    r = StatsRegistry()
    assert r.get("chat", "canary", "v2") is r.get("chat", "canary", "v2")
    assert r.get("chat", "canary", "v3") is not r.get("chat", "canary", "v2")
    assert len(list(r)) == 2


def sse(*events: object, done: bool = True) -> bytes:
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if done else b"")


CHUNK = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
FINAL = {
    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3},
}


@pytest.mark.parametrize(
    ("tail", "is_sse", "prompt", "completion", "finished"),
    [
        (
            json.dumps(
                {
                    "id": "x",
                    "choices": [],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
                }
            ).encode(),
            False,
            10,
            8,
            True,
        ),
        (b'{"id": "x", "choices": []}', False, None, None, True),
        (sse(CHUNK, FINAL), True, 7, 3, True),
        (sse(CHUNK, FINAL, done=False), True, 7, 3, True),  # finish_reason without [DONE]: complete
        (
            sse(CHUNK, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            True,
            None,
            None,
            True,
        ),
        (sse(CHUNK, CHUNK, done=False), True, None, None, False),  # neither: truncated
        (
            b'data: {"usage": {"prompt_tokens": 1, "compl',
            True,
            None,
            None,
            False,
        ),  # cut inside the object
        (b'"usage": "not an object" data: [DONE]', True, None, None, True),
    ],
)
def test_read_tail(
    tail: bytes, is_sse: bool, prompt: int | None, completion: int | None, finished: bool
) -> None:
    facts = read_tail(tail, is_sse)
    assert (facts.prompt_tokens, facts.completion_tokens, facts.finished) == (
        prompt,
        completion,
        finished,
    )
