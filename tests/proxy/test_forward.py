"""The forwarder end to end on real sockets: fake upstreams, a real proxy, real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from config.schema import SplitgateConfig
from tests.conftest import StartApp, StartProxy, StartUpstream, two_track_config
from tests.proxy.forward_helpers import CHAT, STREAM, config, eventually, raw_exchange, track


async def test_non_streaming_answer_is_stamped(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    stable, stable_url = await start_upstream("v1.0.0")
    _, canary_url = await start_upstream("v1.1.0")
    proxy = await start_proxy(two_track_config(stable_url, canary_url, canary_weight=0))
    async with session.post(
        f"{proxy}/v1/chat/completions", json=CHAT, headers={"x-user-id": "u1"}
    ) as r:
        body = await r.json()
        assert r.status == 200
        assert r.headers["X-Splitgate-Track"] == "stable"
        assert r.headers["X-Splitgate-Version"] == "v1.0.0"
        assert r.headers["X-Splitgate-Generation"] == "0"
        generated = r.headers["X-Request-Id"]
    assert body["object"] == "chat.completion"
    assert len(stable.received) == 1
    assert stable.received[0].headers["X-Request-Id"] == generated
    assert stable.received[0].headers["Via"] == "1.1 splitgate"


async def test_client_request_id_is_kept_and_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    fake, url = await start_upstream()
    proxy = await start_proxy(two_track_config(url, url, canary_weight=0))
    async with session.get(f"{proxy}/v1/models", headers={"X-Request-Id": "req-abc.123"}) as r:
        assert r.headers["X-Request-Id"] == "req-abc.123"
    async with session.get(
        f"{proxy}/v1/models", headers={"X-Request-Id": "bad id\twith spaces"}
    ) as r:
        assert r.headers["X-Request-Id"] != "bad id\twith spaces"
    assert fake.received[0].headers["X-Request-Id"] == "req-abc.123"


async def test_sse_reaches_the_client_while_the_upstream_is_still_generating(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    fake, url = await start_upstream(chunks=6, tps=5)
    proxy = await start_proxy(two_track_config(url, url, canary_weight=0))
    async with session.post(f"{proxy}/v1/chat/completions", json=STREAM) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["X-Accel-Buffering"] == "no"
        assert r.headers["Cache-Control"] == "no-cache"
        first = await r.content.readuntil(b"\n\n")
        # The first event is here and the upstream has not finished: nothing was buffered.
        assert fake.open_streams == 1
        rest = await r.content.read()
    events = [line for line in (first + rest).split(b"\n\n") if line]
    assert len(events) == 8  # 6 tokens, the finish chunk, [DONE]
    assert events[-1] == b"data: [DONE]"
    assert (
        json.loads(events[0].removeprefix(b"data: "))["choices"][0]["delta"]["content"]
        == "v1.0.0-token0 "
    )


async def test_users_stay_on_their_track_and_split_by_weight(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    _, stable_url = await start_upstream("v1.0.0")
    _, canary_url = await start_upstream("v1.1.0")
    proxy = await start_proxy(two_track_config(stable_url, canary_url, canary_weight=30))
    seen: dict[str, set[str]] = {}
    for round_ in range(3):
        for i in range(150):
            async with session.get(f"{proxy}/v1/models", headers={"x-user-id": f"user-{i}"}) as r:
                seen.setdefault(f"user-{i}", set()).add(r.headers["X-Splitgate-Track"])
        assert round_ >= 0
    assert all(len(tracks) == 1 for tracks in seen.values())
    canary = sum(1 for tracks in seen.values() if tracks == {"canary"})
    assert 20 < canary < 70  # 30 % of 150 = 45


async def test_mid_stream_cut_forwards_every_byte_then_aborts(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, url = await start_upstream(chunks=10, reset_after=3)
    proxy = await start_proxy(two_track_config(url, url, canary_weight=0))
    body = json.dumps(STREAM).encode()
    raw = await raw_exchange(
        proxy,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert payload.count(b"data: {") == 3  # all three events the upstream sent
    assert b"[DONE]" not in payload
    assert not payload.endswith(b"0\r\n\r\n")  # never the clean end of a chunked body


async def test_mid_stream_cut_is_an_error_for_an_http_client(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    _, url = await start_upstream(chunks=10, reset_after=2)
    proxy = await start_proxy(two_track_config(url, url, canary_weight=0))
    async with session.post(f"{proxy}/v1/chat/completions", json=STREAM) as r:
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_idle_gap_mid_stream_aborts_the_client(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    _, url = await start_upstream(chunks=3, tps=0.5)
    proxy = await start_proxy(config([track("stable", 100, url)], timeouts={"idle": 0.3}))
    async with session.post(f"{proxy}/v1/chat/completions", json=STREAM) as r:
        assert r.status == 200
        first = await r.content.readuntil(b"\n\n")
        assert first.startswith(b"data: ")
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()


async def test_slow_but_steady_stream_is_not_cut(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    # Each gap is under the idle limit; the whole stream is longer than it: no total limit.
    _, url = await start_upstream(chunks=6, tps=10)
    proxy = await start_proxy(
        config([track("stable", 100, url)], timeouts={"idle": 0.4, "first_byte": 0.4})
    )
    async with session.post(f"{proxy}/v1/chat/completions", json=STREAM) as r:
        body = await r.read()
    assert body.endswith(b"data: [DONE]\n\n")


async def test_client_disconnect_stops_the_upstream(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    fake, url = await start_upstream(chunks=1000, tps=5)
    proxy = await start_proxy(config([track("stable", 100, url)]))
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{proxy}/v1/chat/completions", json=STREAM) as r,
    ):
        await r.content.readuntil(b"\n\n")
        assert fake.open_streams == 1
    await eventually(lambda: fake.open_streams == 0)
    assert fake.completed_streams == 0


async def test_client_disconnect_during_upstream_silence_stops_the_upstream(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    fake, url = await start_upstream(ttfb=60)
    proxy = await start_proxy(config([track("stable", 100, url)]))
    async with aiohttp.ClientSession() as s:
        request = asyncio.ensure_future(s.post(f"{proxy}/v1/chat/completions", json=CHAT))
        await eventually(lambda: len(fake.received) == 1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    await eventually(lambda: fake.cancelled == 1)


async def test_least_request_avoids_the_busy_endpoint(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    a, a_url = await start_upstream(chunks=1000, tps=5)
    b, b_url = await start_upstream(chunks=1000, tps=5)
    cfg = SplitgateConfig.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "balance": "least_request",
                    "tracks": [track("stable", 100, a_url, b_url)],
                }
            ]
        }
    )
    proxy = await start_proxy(cfg)
    async with session.post(f"{proxy}/v1/chat/completions", json=STREAM) as held:
        await held.content.readuntil(b"\n\n")
        busy = a if a.open_streams else b
        idle = b if busy is a else a
        for _ in range(4):
            async with session.get(f"{proxy}/v1/models") as r:
                assert r.status == 200
        assert [x.path for x in idle.received].count("/v1/models") == 4
        assert [x.path for x in busy.received].count("/v1/models") == 0


async def test_unknown_path_gives_404_json(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    fake, url = await start_upstream()
    proxy = await start_proxy(config([track("stable", 100, url)]))
    async with session.get(f"{proxy}/v2/other") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "no_route"
    assert fake.received == []


async def test_every_method_and_query_string_is_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    fake, url = await start_upstream()
    proxy = await start_proxy(config([track("stable", 100, url + "/echo")]))
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        async with session.request(method, f"{proxy}/v1/x?a=1&b=%20", data=b"body") as r:
            assert r.status == 200
            assert (await r.json())["body_bytes"] == 4
    assert [(r.method, r.path) for r in fake.received] == [
        (m, "/echo/v1/x?a=1&b=%20") for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    ]


async def test_head_request(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    _, url = await start_upstream()
    proxy = await start_proxy(config([track("stable", 100, url)]))
    async with session.head(f"{proxy}/v1/models") as r:
        assert r.status == 200
        assert await r.read() == b""


async def test_large_bodies_stream_both_ways_intact(
    start_app: StartApp, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        data = await request.read()
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(0, len(data), 65536):
            await response.write(data[i : i + 65536])
        return response

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/echo", echo)
    proxy = await start_proxy(config([track("stable", 100, await start_app(app))]))
    payload = bytes(range(256)) * 16384  # 4 MiB: above the buffering threshold, so streamed

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    async with session.post(f"{proxy}/v1/echo", data=chunked()) as r:
        assert r.status == 200
        assert await r.read() == payload
    small = payload[:900_000]  # under the threshold: read whole, then forwarded
    async with session.post(f"{proxy}/v1/echo", data=small) as r:
        assert await r.read() == small


async def test_health_endpoints(
    start_upstream: StartUpstream, start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    _, url = await start_upstream()
    proxy = await start_proxy(config([track("stable", 100, url)]))
    async with session.get(f"{proxy}/healthz") as r:
        assert r.status == 200
    async with session.get(f"{proxy}/readyz") as r:
        assert r.status == 200
        assert await r.json() == {
            "ready": True,
            "draining": False,
            "generation": 0,
            "source": "file",
            "routes": ["chat"],
        }
