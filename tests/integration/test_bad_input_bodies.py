"""Edge safety on raw sockets, bodies and slow clients: declared and chunked bodies over the
limit are a 413 before the upstream, bodies under it arrive intact (buffered or streamed),
and stalled or trickled heads and bodies are closed or a 408 (the raw HTTP helpers:
``raw_http.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import re

from tests.conftest import StartProxy, StartUpstream
from tests.integration.raw_http import (
    assert_json_error,
    chunked,
    connect,
    exchange,
    proxy_to_fakes,
    request,
)

# --------------------------------------------------------------------------------------------
# 7. Body limits
# --------------------------------------------------------------------------------------------

LIMITS = {"max_body_bytes": 1000, "buffer_body_bytes": 500}


async def test_declared_body_over_the_limit_is_413(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, limits=LIMITS)
    head = request("POST", "/echo", [("Content-Length", "5000")])
    response = await exchange(setup.port, head + b"x" * 1000)
    error = assert_json_error(response, 413)
    assert error["code"] == "request_too_large"
    assert setup.received() == []


async def test_chunked_body_growing_over_the_limit_is_413(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, limits=LIMITS)
    raw = request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(*[b"y" * 300] * 5))
    response = await exchange(setup.port, raw)
    error = assert_json_error(response, 413)
    assert error["code"] == "request_too_large"
    assert setup.received() == [], "the upstream got a complete body"


async def test_streamed_body_under_the_limit_arrives_intact(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, limits=LIMITS)
    body = bytes(range(256)) * 3 + b"z" * 32  # 800 bytes: over buffer_body_bytes, streamed
    response = await exchange(setup.port, request("POST", "/echo", body=body))
    assert response is not None and response.status == 200, response
    assert response.json()["body_bytes"] == 800
    [seen] = setup.stable.received
    assert seen.body == body


async def test_chunked_body_under_the_limit_arrives_intact(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, limits=LIMITS)
    parts = [b"a" * 300, b"b" * 300, b"c" * 300]
    raw = request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked(*parts))
    response = await exchange(setup.port, raw)
    assert response is not None and response.status == 200, response
    [seen] = setup.stable.received
    assert seen.body == b"".join(parts)


# --------------------------------------------------------------------------------------------
# 10. Slow clients
# --------------------------------------------------------------------------------------------

SLOW_BOUND = 10.0


def assert_closed_or_4xx(data: bytes) -> None:
    if data:
        assert re.match(rb"HTTP/1\.[01] 4\d\d", data), (
            f"expected a 4xx or a close, got {data[:200]!r}"
        )


async def test_stalled_request_head_is_closed(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, timeouts={"client_header": 0.5})
    async with connect(setup.port) as conn:
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: s\r\nContent-Le")
        data = await conn.rest(SLOW_BOUND)
    assert_closed_or_4xx(data)
    assert setup.received() == []


async def test_trickled_request_head_is_closed(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    """A slowloris that keeps sending a byte now and then never finishes its head: the header
    deadline runs from accept, not from the last byte, so the proxy still hangs up."""
    setup = await proxy_to_fakes(start_upstream, start_proxy, timeouts={"client_header": 0.5})
    async with connect(setup.port) as conn:
        await conn.send(b"GET /echo HTTP/1.1\r\nHost: s\r\n")

        async def trickle() -> None:
            for _ in range(int(SLOW_BOUND / 0.1)):
                await asyncio.sleep(0.1)
                await conn.send(b"X")

        trickler = asyncio.create_task(trickle())
        try:
            data = await conn.rest(SLOW_BOUND)
        finally:
            trickler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trickler
    assert_closed_or_4xx(data)
    assert setup.received() == []


async def test_stalled_request_body_is_408(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, timeouts={"client_body": 0.5})
    head = request("POST", "/echo", [("Content-Length", "100")])
    async with connect(setup.port) as conn:
        await conn.send(head + b"0123456789")
        response = await conn.response(SLOW_BOUND)
    if response is not None:
        error = assert_json_error(response, 408)
        assert error["code"] == "request_timeout"
        assert response.headers.get("Connection", "").lower() == "close"
    assert setup.received() == []


async def test_stalled_streamed_body_is_408(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(
        start_upstream, start_proxy, timeouts={"client_body": 0.5}, limits=LIMITS
    )
    head = request("POST", "/echo", [("Content-Length", "900")])  # streamed (> 500 bytes)
    async with connect(setup.port) as conn:
        await conn.send(head + b"x" * 100)
        response = await conn.response(SLOW_BOUND)
    if response is not None:
        error = assert_json_error(response, 408)
        assert error["code"] == "request_timeout"
    assert setup.received() == [], "the upstream got a complete body"
