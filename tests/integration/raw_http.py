"""Raw HTTP/1.1 for the edge-safety tests (``test_bad_input*.py``): a real proxy on 127.0.0.1
reached through ``asyncio.open_connection``, exact bytes written, so nothing (no client
library) tidies the request up first, and responses read as the server framed them. The
upstreams are the fake LLM (``/echo`` records what arrived) or the recording aiohttp app
defined here, which records every request whatever its path (``start_recorder``, a fixture of
the folder's conftest). Every read is only bounded so that a hung proxy fails the test
instead of hanging it.
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

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from loadtests.fake_llm import FakeLLM, Received
from tests.conftest import StartProxy, StartUpstream, two_track_config

SUCCESS = re.compile(rb"HTTP/1\.[01] 2\d\d")
"""A 2xx status line anywhere in what the proxy sent (e.g. a smuggled request's answer)."""

READ_TIMEOUT = 5.0
"""Bound on every read; a healthy proxy answers these requests in milliseconds."""

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
