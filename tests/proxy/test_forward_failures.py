"""The forwarder when upstreams fail, end to end on real sockets: retries on another endpoint
(never a POST the upstream received), deadlines, outlier ejection, falling back to the
baseline, and upstream errors passed through or answered in the OpenAI shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import StartProxy, StartUpstream, refused_url
from tests.proxy.forward_helpers import CHAT, config, track


async def test_connect_failure_retries_another_endpoint_of_the_track(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    fake, url = await start_upstream()
    dead = refused_url()
    proxy = await start_proxy(config([track("stable", 100, dead, url)]))
    for _ in range(4):  # round robin puts the dead endpoint first half of the time
        async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
            assert r.status == 200
    assert len(fake.received) == 4


async def test_all_endpoints_refusing_gives_502_in_openai_shape(
    start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    proxy = await start_proxy(config([track("stable", 100, refused_url(), refused_url())]))
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
        assert r.status == 502
        body = await r.json()
    assert body["error"]["code"] == "upstream_unreachable"
    assert body["error"]["type"] == "upstream_error"
    assert "127.0.0.1" not in body["error"]["message"]  # upstream addresses stay private


@pytest.fixture
async def drop_after_request() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An upstream that reads a whole request and closes without answering."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    server.close()
    await server.wait_closed()


async def test_post_received_by_the_upstream_is_never_sent_twice(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    session: aiohttp.ClientSession,
    drop_after_request: tuple[str, list[bytes]],
) -> None:
    dropper, seen = drop_after_request
    fake, url = await start_upstream()
    proxy = await start_proxy(config([track("stable", 100, dropper, url)]))
    statuses = []
    for _ in range(2):
        async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
            statuses.append(r.status)
            if r.status == 502:
                assert (await r.json())["error"]["code"] == "upstream_disconnected"
    # One of the two requests went first to the dropping endpoint: it got a 502, not a retry.
    assert sorted(statuses) == [200, 502]
    assert len(seen) == 1
    assert len(fake.received) == 1


async def test_idempotent_request_is_retried_after_a_drop(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    session: aiohttp.ClientSession,
    drop_after_request: tuple[str, list[bytes]],
) -> None:
    dropper, seen = drop_after_request
    fake, url = await start_upstream()
    proxy = await start_proxy(config([track("stable", 100, dropper, url)]))
    for _ in range(2):
        async with session.get(f"{proxy}/v1/models") as r:
            assert r.status == 200
    # aiohttp's client itself retries an idempotent request once on the same endpoint.
    assert 1 <= len(seen) <= 2
    assert len(fake.received) == 2


async def test_first_byte_deadline_gives_504(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    _, url = await start_upstream(ttfb=5)
    proxy = await start_proxy(config([track("stable", 100, url)], timeouts={"first_byte": 0.3}))
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
        assert r.status == 504
        assert (await r.json())["error"]["code"] == "upstream_timeout"
        assert r.headers["X-Splitgate-Track"] == "stable"


async def test_failing_endpoint_is_ejected(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    bad, bad_url = await start_upstream(status=503)
    good, good_url = await start_upstream()
    proxy = await start_proxy(
        config(
            [track("stable", 100, bad_url, good_url)],
            outlier_detection={"consecutive_failures": 2, "base_ejection": 60},
        )
    )
    statuses = []
    for _ in range(12):
        async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
            statuses.append(r.status)
    assert len(bad.received) == 2
    assert statuses.count(503) == 2
    assert len(good.received) == 10


async def test_no_healthy_upstream_gives_503(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    bad, bad_url = await start_upstream(status=503)
    proxy = await start_proxy(
        config([track("stable", 100, bad_url)], outlier_detection={"consecutive_failures": 1})
    )
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
        assert r.status == 503  # the upstream's own 503, passed through
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
        assert r.status == 503
        assert (await r.json())["error"]["code"] == "no_healthy_upstream"
    assert len(bad.received) == 1


async def test_unreachable_candidate_falls_back_to_the_baseline(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    stable, stable_url = await start_upstream()
    proxy = await start_proxy(
        config([track("stable", 0, stable_url), track("canary", 100, refused_url())])
    )
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
        assert r.status == 200
        assert r.headers["X-Splitgate-Track"] == "stable"
    assert len(stable.received) == 1


async def test_forced_track_never_falls_back(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    stable, stable_url = await start_upstream()
    proxy = await start_proxy(
        config([track("stable", 100, stable_url), track("canary", 0, refused_url())]),
        secret="s3cret",
    )
    headers = {"X-Splitgate-Track": "canary", "X-Splitgate-Internal": "s3cret"}
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT, headers=headers) as r:
        assert r.status == 502
        assert r.headers["X-Splitgate-Track"] == "canary"
    assert stable.received == []


async def test_upstream_errors_pass_through_with_retry_after(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    fake, url = await start_upstream(status=429, retry_after=7)
    proxy = await start_proxy(config([track("stable", 100, url)]))
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "7"
        assert (await r.json())["error"]["message"] == "fake 429"
    assert len(fake.received) == 1


async def test_malformed_upstream_head_gives_502(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    _, url = await start_upstream(bad_headers=True)
    proxy = await start_proxy(config([track("stable", 100, url)], retries={"max_attempts": 1}))
    async with session.post(f"{proxy}/v1/chat/completions", json=CHAT) as r:
        assert r.status == 502
        assert (await r.json())["error"]["code"] == "bad_upstream_response"
