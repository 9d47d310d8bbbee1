"""A fixed sequence of requests with known outcomes gives exactly the expected counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from config.keys import Keys
from config.metrics import BUCKET_BOUNDS_MS
from config.schema import SplitgateConfig
from control.redis_client import connect
from control.store import Change, DocumentStore
from control.windows import WindowReader
from proxy.app import Follow
from splitgate.redis_server import RedisServer
from tests.conftest import StartProxy, StartUpstream, refused_url

SECRET = "metrics-secret"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    all_samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return all_samples[(name, tuple(sorted(labels.items())))]


async def test_known_outcomes_give_exact_counters(
    start_upstream: StartUpstream, start_proxy: StartProxy, redis_server: RedisServer
) -> None:
    _, stable = await start_upstream("v1.0.0", chunks=8)
    config = SplitgateConfig.model_validate(
        {
            "proxy": {
                "timeouts": {"first_byte": 0.3},
                "limits": {"max_body_bytes": 10_000},
                "outlier_detection": {"consecutive_failures": 100},
            },
            "routes": [
                {
                    "name": "chat",
                    "tracks": [
                        {
                            "name": "stable",
                            "version": "v1.0.0",
                            "upstreams": [stable],
                            "weight": 100,
                        },
                        {
                            "name": "canary",
                            "version": "v1.1.0",
                            "upstreams": [refused_url()],
                            "weight": 0,
                        },
                    ],
                }
            ],
        }
    )
    redis = connect(redis_server.url)
    await DocumentStore(redis, Keys()).write(config.document(), 0, Change("t", "", "seed", "x"))
    proxy = await start_proxy(
        config, secret=SECRET, follow=Follow(redis_server.url, "metrics-test")
    )
    url = f"{proxy}/v1/chat/completions"

    async def call(body: Any = None, fake: str = "", **headers: str) -> int:
        sent = {**headers, **({"X-Fake": fake} if fake else {})}
        async with aiohttp.ClientSession() as s, s.post(url, json=body or CHAT, headers=sent) as r:
            with contextlib.suppress(aiohttp.ClientPayloadError):
                await r.read()
            return r.status

    for _ in range(3):
        assert await call() == 200  # usage 10 + 8 each
    for _ in range(2):
        assert await call(STREAM, "chunks=5") == 200  # usage 10 + 5 each, in the last chunk
    assert await call(STREAM, "reset_after=2") == 200  # cut mid-stream
    assert await call(STREAM, "truncate=1") == 200  # ends without finish_reason or [DONE]
    assert await call(fake="status=429") == 429
    assert await call(fake="status=503") == 503
    assert await call(fake="ttfb=5") == 504
    assert await call({"pad": "x" * 20_000}) == 413
    assert await call(**{"X-Splitgate-Track": "canary", "X-Splitgate-Internal": SECRET}) == 502

    async with aiohttp.ClientSession() as s, s.get(f"{proxy}/metrics") as r:
        text = await r.text()
    got = samples(text)
    stable_labels = {"route": "chat", "track": "stable", "version": "v1.0.0", "mode": "live"}
    canary_labels = {"route": "chat", "track": "canary", "version": "v1.1.0", "mode": "live"}
    assert value(got, "splitgate_requests_total", **stable_labels) == 11
    errors = {
        c: value(got, "splitgate_request_errors_total", **stable_labels, **{"class": c})
        for c in (
            "connect",
            "timeout",
            "upstream_5xx",
            "upstream_429",
            "proxy_4xx",
            "cut",
            "truncated",
        )
    }
    assert errors == {
        "connect": 0,
        "timeout": 1,
        "upstream_5xx": 1,
        "upstream_429": 1,
        "proxy_4xx": 1,
        "cut": 1,
        "truncated": 1,
    }
    assert value(got, "splitgate_tokens_total", **stable_labels, kind="prompt") == 50
    assert value(got, "splitgate_tokens_total", **stable_labels, kind="completion") == 34
    assert value(got, "splitgate_request_duration_seconds_count", **stable_labels) == 11
    assert value(got, "splitgate_request_duration_seconds_bucket", **stable_labels, le="+Inf") == 11
    # Every request that got a first body byte: all but the timeout and the 413.
    assert value(got, "splitgate_time_to_first_byte_seconds_count", **stable_labels) == 9
    # The 504 waited at least the 0.3 s first-byte deadline: at most 10 requests are faster.
    assert (
        value(got, "splitgate_request_duration_seconds_bucket", **stable_labels, le="0.256") <= 10
    )
    assert value(got, "splitgate_requests_total", **canary_labels) == 1
    assert (
        value(got, "splitgate_request_errors_total", **canary_labels, **{"class": "connect"}) == 1
    )
    assert value(got, "splitgate_routing_generation") == 1
    # The forced canary request is not part of the split: no sample-ratio alarm for it.
    assert value(got, "splitgate_sample_ratio_mismatch", route="chat") == 0
    assert json.dumps(text).count("user") == 0  # no user ids in any label

    # The same counts reach the fleet windows in Redis, bucket for bucket.
    reader = WindowReader(redis, Keys())

    async def flushed() -> bool:
        _, _, merged = await reader.read("chat", 60)
        return ("stable", "v1.0.0") in merged and merged[("stable", "v1.0.0")].requests == 11

    async with asyncio.timeout(10):
        while not await flushed():  # noqa: ASYNC110 - the flusher runs once a second
            await asyncio.sleep(0.1)
    _, _, merged = await reader.read("chat", 60)
    stable_window = merged[("stable", "v1.0.0")]
    assert {c: n for c, n in stable_window.errors.items() if n} == {
        c: int(n) for c, n in errors.items() if n
    }
    assert (stable_window.prompt_tokens, stable_window.completion_tokens) == (50, 34)
    cumulative = 0
    for index, count in enumerate(stable_window.latency[:-1]):
        cumulative += count
        if index % 2 == 0:  # the bounds /metrics exposes
            le = repr(BUCKET_BOUNDS_MS[index] / 1000)
            assert (
                value(got, "splitgate_request_duration_seconds_bucket", **stable_labels, le=le)
                == cumulative
            )
    assert merged[("canary", "v1.1.0")].errors["connect"] == 1
    await redis.aclose()
