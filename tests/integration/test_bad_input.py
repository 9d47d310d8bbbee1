"""Edge safety on raw sockets, the request's framing and target: smuggling and malformed
framing refused before any upstream, absolute-form targets that never choose the upstream,
tunnels and upgrades refused, oversized heads, and dot-segment path tricks (the raw HTTP
helpers: ``raw_http.py``). Tests assert behaviour, never timing."""

from __future__ import annotations

import json

import pytest

from tests.conftest import StartProxy, StartUpstream
from tests.integration.raw_http import (
    SUCCESS,
    StartRecorder,
    assert_json_error,
    assert_refused,
    chunked,
    connect,
    exchange,
    lower_keys,
    port_of,
    proxy_to_fakes,
    proxy_to_recorders,
    request,
)

# --------------------------------------------------------------------------------------------
# 1-2. Request smuggling and malformed framing
# --------------------------------------------------------------------------------------------


async def test_content_length_with_chunked_is_refused_and_smuggles_nothing(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    smuggled = request("POST", "/echo/smuggled", [("Content-Length", "0")])
    body = b"0\r\n\r\n" + smuggled
    head = request(
        "POST", "/echo", [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
    )
    async with connect(setup.port) as conn:
        await conn.send(head + body)
        first = await conn.response()
        rest = await conn.rest()
    assert first is not None and first.status == 400, first
    assert not SUCCESS.search(rest), f"a second (smuggled) response followed: {rest[:300]!r}"
    assert setup.received() == []


async def test_transfer_encoding_in_http10_is_not_kept_alive(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    """RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing; the server
    MUST close the connection after it, so nothing pipelined behind it is ever parsed."""
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    first = (
        b"POST /echo HTTP/1.0\r\nHost: s\r\nConnection: keep-alive\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"hello")
    )
    async with connect(setup.port) as conn:
        await conn.send(first + request("GET", "/echo/pipelined"))
        response = await conn.response()
        second = await conn.response() if response is not None else None
    assert second is None, f"a request pipelined after it was answered: {second}"
    assert "/echo/pipelined" not in [r.path for r in setup.received()]


BODY = b"hello"
MALFORMED: dict[str, bytes] = {
    "transfer-encoding chunked, chunked": (
        b"POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
        + chunked(BODY)
    ),
    "transfer-encoding gzip": (
        b"POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: gzip\r\n\r\n" + BODY
    ),
    "two transfer-encoding chunked headers": (
        b"POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked(BODY)
    ),
    "content-length twice, different": (
        b"POST /echo HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        + BODY
        + b"x"
    ),
    "host twice": b"GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    "obs-fold continuation line": b"GET /echo HTTP/1.1\r\nHost: s\r\nX-Folded: a\r\n  b\r\n\r\n",
    "bare LF line endings": b"GET /echo HTTP/1.1\nHost: s\nX-App: 1\n\n",
    # RFC 9112 §5.1: whitespace between a field name and the colon MUST be answered 400.
    "space before colon": b"POST /echo HTTP/1.1\r\nHost: s\r\nContent-Length : 5\r\n\r\n" + BODY,
    # RFC 9110 §8.6: Content-Length is 1*DIGIT.
    "signed content-length": b"POST /echo HTTP/1.1\r\nHost: s\r\nContent-Length: +5\r\n\r\n" + BODY,
    "bad chunk size": (
        b"POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5x\r\nhello\r\n0\r\n\r\n"
    ),
    "NUL in a header value": b"GET /echo HTTP/1.1\r\nHost: s\r\nX-App: a\x00b\r\n\r\n",
    "no host": b"GET /echo HTTP/1.1\r\nX-App: 1\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_request_is_refused_before_the_upstream(
    start_upstream: StartUpstream, start_proxy: StartProxy, raw: bytes
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    async with connect(setup.port) as conn:
        await conn.send(raw)
        response = await conn.response()
        rest = await conn.rest() if response is not None else b""
    assert_refused(response)
    assert not SUCCESS.search(rest), rest[:300]
    assert setup.received() == [], f"the upstream got {setup.received()}"


# --------------------------------------------------------------------------------------------
# 3. Absolute-form targets never choose the upstream
# --------------------------------------------------------------------------------------------


async def test_absolute_form_target_goes_to_the_configured_upstream_only(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    raw = request("POST", "http://169.254.169.254/echo", body=b"{}", host="evil.example")
    response = await exchange(setup.port, raw)
    assert response is not None and response.status == 200, response
    assert response.json()["version"] == "v1.0.0"
    assert setup.canary.received == []
    [seen] = setup.stable.received
    assert seen.path == "/echo"
    headers = lower_keys(seen.headers)
    assert headers["host"] == f"127.0.0.1:{port_of(setup.stable_url)}"
    assert "evil.example" not in json.dumps(headers)
    assert "169.254.169.254" not in json.dumps(headers)


# --------------------------------------------------------------------------------------------
# 4. Tunnels and upgrades
# --------------------------------------------------------------------------------------------


async def test_connect_is_refused_with_405(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    raw = request("CONNECT", "example.com:443", host="example.com:443")
    async with connect(setup.port) as conn:
        await conn.send(raw)
        response = await conn.response()
        error = assert_json_error(response, 405)
        assert error["code"] == "method_not_allowed"
        assert await conn.rest() == b"", "the connection is closed after a refused tunnel"
    assert setup.received() == []


async def test_websocket_upgrade_is_refused_with_400(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    raw = request(
        "GET",
        "/echo",
        [
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    async with connect(setup.port) as conn:
        await conn.send(raw)
        response = await conn.response()
        rest = await conn.rest()
    error = assert_json_error(response, 400)
    assert error["code"] == "upgrade_not_supported"
    assert b"101" not in rest[:12]
    assert setup.received() == []


# --------------------------------------------------------------------------------------------
# 8. Oversized heads
# --------------------------------------------------------------------------------------------

OVERSIZED: dict[str, list[tuple[str, str]]] = {
    "one 9000-byte header": [("X-Big", "a" * 9000)],
    "200 headers": [(f"X-H{i}", "1") for i in range(200)],
}


@pytest.mark.parametrize("headers", OVERSIZED.values(), ids=OVERSIZED.keys())
async def test_oversized_head_is_refused(
    start_upstream: StartUpstream, start_proxy: StartProxy, headers: list[tuple[str, str]]
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    response = await exchange(setup.port, request("GET", "/echo", headers))
    assert_refused(response, (400, 431))
    assert setup.received() == []


async def test_oversized_request_line_is_refused(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    response = await exchange(setup.port, request("GET", "/echo/" + "a" * 9000))
    assert_refused(response, (400, 414))
    assert setup.received() == []


# --------------------------------------------------------------------------------------------
# 9. Path tricks
# --------------------------------------------------------------------------------------------

TRICK_PATHS = [
    "/v1/../admin",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2e/admin",
    "/v1/./x",
    "/v1/%2e/x",
    "/v1/..",
    "/v1/..\\admin",
    "/v1/x?next=/../ok",
]


@pytest.mark.parametrize("path", TRICK_PATHS[:-1])
async def test_dot_segments_are_refused(
    start_recorder: StartRecorder, start_proxy: StartProxy, path: str
) -> None:
    stable, canary, port = await proxy_to_recorders(start_recorder, start_proxy)
    response = await exchange(port, request("GET", path))
    error = assert_json_error(response, 400)
    assert error["code"] == "bad_path"
    assert stable.seen == [] and canary.seen == [], [s.target for s in stable.seen + canary.seen]


async def test_dots_in_the_query_are_not_a_path_trick(
    start_recorder: StartRecorder, start_proxy: StartProxy
) -> None:
    stable, _, port = await proxy_to_recorders(start_recorder, start_proxy)
    response = await exchange(port, request("GET", TRICK_PATHS[-1]))
    assert response is not None and response.status == 200, response
    assert [s.target for s in stable.seen] == [TRICK_PATHS[-1]]
