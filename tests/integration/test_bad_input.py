"""Edge safety on raw sockets: what a hostile or broken client writes never reaches an upstream.

Every test talks to a real proxy on 127.0.0.1 through ``asyncio.open_connection`` and writes
exact bytes, so nothing (no client library) tidies the request up first. The upstreams are the
fake LLM (``/echo`` records what arrived) or a tiny recording aiohttp app defined here, which
records every request whatever its path. Tests assert behaviour, never timing: every read is
only bounded so that a hung proxy fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from loadtests.fake_llm import FakeLLM, Received
from tests.conftest import StartApp, StartProxy, StartUpstream, two_track_config

SUCCESS = re.compile(rb"HTTP/1\.[01] 2\d\d")
"""A 2xx status line anywhere in what the proxy sent (e.g. a smuggled request's answer)."""

READ_TIMEOUT = 5.0
"""Bound on every read; a healthy proxy answers these requests in milliseconds."""

SECRET = "s3cret"

# --------------------------------------------------------------------------------------------
# Raw HTTP/1.1 on a socket
# --------------------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One TCP connection to the proxy: write bytes, read responses as the server framed them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        """Write ``data``; a server that already closed the connection is not an error here
        (it may have answered and hung up before reading everything), the reads tell."""
        with contextlib.suppress(ConnectionError):
            self.writer.write(data)
            await self.writer.drain()

    async def response(self, bound: float = READ_TIMEOUT) -> RawResponse | None:
        """The next response, or ``None`` if the server closed the connection without one."""
        try:
            return await asyncio.wait_for(_read_response(self.reader), bound)
        except TimeoutError:
            raise AssertionError(f"no complete response and no close within {bound} s") from None

    async def rest(self, bound: float = READ_TIMEOUT) -> bytes:
        """Everything the server still sends until it closes the connection."""
        try:
            return await asyncio.wait_for(_read_to_eof(self.reader), bound)
        except TimeoutError:
            raise AssertionError(f"the connection is still open after {bound} s") from None


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[RawConnection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def exchange(port: int, data: bytes) -> RawResponse | None:
    """Send ``data`` on a new connection and read one response (``None``: closed, no answer)."""
    async with connect(port) as conn:
        await conn.send(data)
        return await conn.response()


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read()
    except ConnectionError:
        return b""


async def _read_response(reader: asyncio.StreamReader) -> RawResponse | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise AssertionError(f"closed inside a response head: {exc.partial!r}") from None
        return None
    except ConnectionError:
        return None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, *reason = status_line.split(" ", 2)
    # aiohttp answers a head it could not parse as HTTP/1.0 (it does not know the version).
    assert version in ("HTTP/1.1", "HTTP/1.0"), status_line
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers.add(name.strip(), value.strip())
    code = int(status)
    return RawResponse(
        code, reason[0] if reason else "", headers, await _read_body(reader, code, headers)
    )


async def _read_body(reader: asyncio.StreamReader, status: int, headers: CIMultiDict[str]) -> bytes:
    if status < 200 or status in (204, 304):
        return b""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from this proxy
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    if "Content-Length" in headers:
        return await reader.readexactly(int(headers["Content-Length"]))
    return await _read_to_eof(reader)


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    host: str | None = "splitgate.test",
) -> bytes:
    """A well-formed request head (``Host`` first unless ``host`` is None) followed by ``body``.

    Content-Length is added when there is a body and the caller gave no framing header."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    given = list(headers or [])
    framed = {name.lower() for name, _ in given} & {"content-length", "transfer-encoding"}
    if body and not framed:
        given.append(("Content-Length", str(len(body))))
    lines += [f"{name}: {value}" for name, value in given]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes) -> bytes:
    """A chunked body made of ``parts``, with its last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def port_of(base_url: str) -> int:
    port = urlsplit(base_url).port
    assert port is not None
    return port


def lower_keys(
    headers: dict[str, str] | CIMultiDictProxy[str] | CIMultiDict[str],
) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def assert_json_error(response: RawResponse | None, status: int) -> dict[str, Any]:
    """The proxy's own OpenAI-shaped error; returns its ``error`` object."""
    assert response is not None, f"expected a {status} JSON error, the connection was closed"
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers.get("Content-Type", "").startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error, dict)
    assert error["message"] and error["type"] and error["code"]
    return error


def assert_refused(response: RawResponse | None, statuses: tuple[int, ...] = (400,)) -> None:
    """Either an error status in ``statuses`` or a connection closed without any answer."""
    if response is not None:
        assert response.status in statuses, (
            f"expected one of {statuses} or a closed connection, got {response.status} "
            f"{response.reason}: {response.body[:300]!r}"
        )


# --------------------------------------------------------------------------------------------
# Upstreams and proxies
# --------------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    target: str
    headers: CIMultiDictProxy[str]
    body: bytes


Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Recorder:
    """A catch-all upstream that records every request it gets, whatever the path."""

    def __init__(self, reply: Reply | None) -> None:
        self.seen: list[Seen] = []
        self._reply = reply

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, request.headers, body))
        if self._reply is not None:
            return await self._reply(request)
        return web.Response(text="recorded")


StartRecorder = Callable[..., Awaitable[tuple[Recorder, str]]]


@pytest.fixture
def start_recorder(start_app: StartApp) -> StartRecorder:
    async def start(reply: Reply | None = None) -> tuple[Recorder, str]:
        recorder = Recorder(reply)
        return recorder, await start_app(recorder.app())

    return start


@dataclass
class Setup:
    stable: FakeLLM
    canary: FakeLLM
    stable_url: str
    port: int

    def received(self) -> list[Received]:
        return [*self.stable.received, *self.canary.received]


async def proxy_to_fakes(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    *,
    canary_weight: float = 0,
    secret: str | None = None,
    **proxy: Any,
) -> Setup:
    stable, stable_url = await start_upstream("v1.0.0")
    canary, canary_url = await start_upstream("v1.1.0")
    config = two_track_config(stable_url, canary_url, canary_weight, **proxy)
    base = await start_proxy(config, secret=secret)
    return Setup(stable, canary, stable_url, port_of(base))


async def proxy_to_recorders(
    start_recorder: StartRecorder, start_proxy: StartProxy, reply: Reply | None = None
) -> tuple[Recorder, Recorder, int]:
    stable, stable_url = await start_recorder(reply)
    canary, canary_url = await start_recorder(reply)
    base = await start_proxy(two_track_config(stable_url, canary_url, canary_weight=0))
    return stable, canary, port_of(base)


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
# 5. Hop-by-hop headers, both directions
# --------------------------------------------------------------------------------------------


async def test_hop_by_hop_request_headers_are_not_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    raw = request(
        "POST",
        "/echo",
        [
            ("Connection", "close, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "x"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "h2c"),
            ("X-App", "1"),
        ],
        b"{}",
    )
    response = await exchange(setup.port, raw)
    assert response is not None and response.status == 200, response
    [seen] = setup.stable.received
    headers = lower_keys(seen.headers)
    for name in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "proxy-connection"):
        assert name not in headers, f"{name} reached the upstream: {headers}"
    assert "upgrade" not in headers, headers
    # The HTTP client may add its own Connection header; the client's must not pass through.
    assert "secret" not in headers.get("connection", "").lower(), headers
    assert "close" not in headers.get("connection", "").lower(), headers
    assert headers["x-app"] == "1"


async def _hop_by_hop_reply(request: web.Request) -> web.StreamResponse:
    return web.Response(
        text="upstream",
        headers={
            "Connection": "X-Up-Hop",
            "X-Up-Hop": "1",
            "Keep-Alive": "timeout=9",
            "X-Splitgate-Track": "forged",
            "X-Splitgate-Version": "forged",
            "X-Request-Id": "upstream-id",
            "X-Kept": "yes",
        },
    )


async def test_hop_by_hop_and_forged_response_headers_are_not_relayed(
    start_recorder: StartRecorder, start_proxy: StartProxy
) -> None:
    stable, _, port = await proxy_to_recorders(start_recorder, start_proxy, _hop_by_hop_reply)
    response = await exchange(port, request("GET", "/anything", [("X-Request-Id", "client-id")]))
    assert response is not None and response.status == 200, response
    assert response.body == b"upstream"
    headers = response.headers
    assert "X-Up-Hop" not in headers
    assert "Keep-Alive" not in headers
    assert "x-up-hop" not in headers.get("Connection", "").lower()
    assert headers.getall("X-Splitgate-Track") == ["stable"]
    assert headers.getall("X-Splitgate-Version") == ["v1.0.0"]
    assert headers.getall("X-Request-Id") == ["client-id"]
    assert headers["X-Upstream-Request-Id"] == "upstream-id"
    assert headers["X-Kept"] == "yes"
    assert len(stable.seen) == 1


# --------------------------------------------------------------------------------------------
# 6. The trusted track override
# --------------------------------------------------------------------------------------------

OVERRIDE_HEADERS = ("x-splitgate-track", "x-splitgate-internal")


def assert_override_headers_consumed(setup: Setup) -> None:
    for seen in setup.received():
        headers = lower_keys(seen.headers)
        for name in OVERRIDE_HEADERS:
            assert name not in headers, f"{name} reached the upstream: {headers}"


@pytest.mark.parametrize(
    "secret_header", [None, "", "wrong", "S3CRET", "s3cre", "s3cret2"], ids=repr
)
async def test_override_without_the_secret_is_ignored_and_stripped(
    start_upstream: StartUpstream, start_proxy: StartProxy, secret_header: str | None
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=0, secret=SECRET)
    headers = [("X-Splitgate-Track", "canary"), ("x-user-id", "u1")]
    if secret_header is not None:
        headers.append(("X-Splitgate-Internal", secret_header))
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    assert response.headers["X-Splitgate-Track"] == "stable"
    assert len(setup.stable.received) == 1
    assert setup.canary.received == []
    assert_override_headers_consumed(setup)


async def test_override_with_the_secret_picks_the_track_and_is_stripped(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=0, secret=SECRET)
    headers = [("X-Splitgate-Track", "canary"), ("X-Splitgate-Internal", SECRET)]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    assert response.headers["X-Splitgate-Track"] == "canary"
    assert response.json()["version"] == "v1.1.0"
    assert setup.stable.received == []
    assert len(setup.canary.received) == 1
    assert_override_headers_consumed(setup)


async def test_override_is_ignored_when_the_proxy_has_no_secret(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=0, secret=None)
    headers = [("X-Splitgate-Track", "canary"), ("X-Splitgate-Internal", "")]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    assert response.headers["X-Splitgate-Track"] == "stable"
    assert_override_headers_consumed(setup)


async def test_spoofed_override_does_not_move_the_split(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=10, secret=SECRET)
    users = [f"user-{i}" for i in range(1000)]
    tracks: list[str] = []

    async def run(share: list[str]) -> None:
        async with connect(setup.port) as conn:  # keep-alive: one connection, many requests
            for user in share:
                headers = [("X-Splitgate-Track", "canary"), ("x-user-id", user)]
                await conn.send(request("GET", "/echo", headers))
                response = await conn.response()
                assert response is not None and response.status == 200, response
                tracks.append(response.headers["X-Splitgate-Track"])

    await asyncio.gather(*(run(users[i::8]) for i in range(8)))
    assert len(tracks) == 1000
    share = tracks.count("canary") / len(tracks) * 100
    assert 7 <= share <= 13, f"canary share {share:.1f} % with a spoofed override"
    assert len(setup.canary.received) == tracks.count("canary")
    assert_override_headers_consumed(setup)


async def test_override_naming_an_unknown_track_is_a_400_naming_the_header(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, secret=SECRET)
    headers = [("X-Splitgate-Track", "nope"), ("X-Splitgate-Internal", SECRET)]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    error = assert_json_error(response, 400)
    assert str(error["param"]).lower() == "x-splitgate-track"
    assert setup.received() == []


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


# --------------------------------------------------------------------------------------------
# 11. X-Forwarded-For
# --------------------------------------------------------------------------------------------


async def test_spoofed_forwarded_for_gets_the_peer_appended(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    headers = [("X-Forwarded-For", "203.0.113.9, 10.0.0.1")]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    [seen] = setup.stable.received
    assert lower_keys(seen.headers)["x-forwarded-for"] == "203.0.113.9, 10.0.0.1, 127.0.0.1"


async def test_forwarded_for_is_the_peer_when_absent(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    response = await exchange(setup.port, request("POST", "/echo", body=b"{}"))
    assert response is not None and response.status == 200, response
    [seen] = setup.stable.received
    assert lower_keys(seen.headers)["x-forwarded-for"] == "127.0.0.1"


# --------------------------------------------------------------------------------------------
# 12. Redirects and cookies pass through; nothing is shared between clients
# --------------------------------------------------------------------------------------------


async def _redirect_with_cookie(request: web.Request) -> web.StreamResponse:
    return web.Response(
        status=302,
        headers={"Location": "http://127.0.0.1:1/internal", "Set-Cookie": "a=1"},
    )


async def test_redirect_is_relayed_and_cookies_are_not_shared(
    start_recorder: StartRecorder, start_proxy: StartProxy
) -> None:
    stable, _, port = await proxy_to_recorders(start_recorder, start_proxy, _redirect_with_cookie)
    first = await exchange(port, request("GET", "/login", [("x-user-id", "alice")]))
    assert first is not None and first.status == 302, first
    assert first.headers["Location"] == "http://127.0.0.1:1/internal"
    assert first.headers.getall("Set-Cookie") == ["a=1"]
    second = await exchange(port, request("GET", "/login", [("x-user-id", "bob")]))
    assert second is not None and second.status == 302, second
    assert [s.target for s in stable.seen] == ["/login", "/login"], "the proxy followed a redirect"
    for seen in stable.seen:
        assert "Cookie" not in seen.headers, seen.headers
