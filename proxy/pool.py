"""The upstream client made for a proxy: keep-alive pools of ``proxy.h1.Connection``.

One pool per upstream origin. A connection goes back to its pool only after a complete
response the upstream meant to keep alive, and idles there at most ``keepalive`` seconds
(below the usual upstream idle timeouts, so the upstream rarely closes a connection just as
a request is written on it); the freshest idle connection is used first. The client never
retries: the forwarder decides, knowing whether the request may have been received.

The request head is one string join of headers the forwarder already filtered, checked once
for CR and LF (a header value can never start a new header), and written with the body in
one ``writelines``. ``https://`` upstreams use the loop's TLS with a default context, which
reads the system's CAs (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` point it elsewhere).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterable
from urllib.parse import urlsplit

from proxy.client import Body, UpstreamError
from proxy.endpoints import Endpoint
from proxy.h1 import Connection

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Origin:
    """Where one upstream origin's connections are: idle ones, their count, who waits."""

    __slots__ = ("host", "host_header", "idle", "open", "port", "tls", "url", "waiters")

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        if parts.hostname is None:
            raise ValueError(f"{origin!r}: no host")
        self.url = origin
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = name if parts.port is None else f"{name}:{parts.port}"
        self.idle: list[Connection] = []
        self.open = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class Response:
    """One exchange's answer (``proxy.client.UpstreamResponse``)."""

    __slots__ = (
        "_conn",
        "_pool",
        "arrived",
        "content_length",
        "pipe",
        "read",
        "reason",
        "status",
    )

    def __init__(self, pool: PooledClient, conn: Connection) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self.status = conn.status
        self.reason = conn.reason
        self.content_length = conn.content_length
        self.read = conn.read
        self.arrived = conn.arrived
        self.pipe = conn.pipe

    def header_items(self) -> list[tuple[str, str]]:
        conn = self._conn
        return conn.headers if conn is not None else []

    def header(self, name: str) -> str | None:
        conn = self._conn
        if conn is None:
            return None
        lower = name.lower()
        if lower == "content-type":
            return conn.content_type
        if lower == "connection":
            return conn.connection
        for key, value in conn.headers:
            if key.lower() == lower:
                return value
        return None

    def forget_head(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.headers.clear()  # the forwarder built its own list from it

    def release(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.pipe(None)  # an idle connection must not hold the client's socket
            self._pool.put_back(conn)

    def close(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.pipe(None)
            conn.close()


class PooledClient:
    """``proxy.client.UpstreamClient`` over pooled keep-alive connections."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        keepalive: float,
        limit_per_host: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._limit = limit_per_host
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        """Bound at the first send (on Python 3.11 each get_running_loop() is a getpid())."""

    async def send(
        self,
        endpoint: Endpoint,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Body,
    ) -> Response:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        origin = self._origins.get(endpoint.origin)
        if origin is None:
            origin = self._origins[endpoint.origin] = _Origin(endpoint.origin)
        conn = self._idle(origin)
        if conn is None:
            conn = await self._connect(origin)
        conn.begin(method == "HEAD")
        try:
            await self._write(conn, origin, method, endpoint.base_path + target, headers, body)
            await conn.head()
        except BaseException:
            conn.close()
            raise
        return Response(self, conn)

    def has_room(self, endpoint: Endpoint) -> bool:
        if not self._limit:
            return True
        origin = self._origins.get(endpoint.origin)
        if origin is None:
            return True
        return not origin.waiters and (bool(origin.idle) or origin.open < self._limit)

    async def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for origin in self._origins.values():
            for conn in origin.idle:
                conn.close()
            origin.idle.clear()

    def put_back(self, conn: Connection) -> None:
        """After a response was read to its end: pool the connection or close it."""
        conn.busy = False
        if not conn.reusable or self._closed:
            conn.close()
            return
        origin = self._origins[conn.origin]
        loop = self._running()
        idle_s = self._keepalive
        if conn.keep_alive_s is not None:
            # Stop a second short of what the upstream announced: it closes at that time.
            idle_s = min(idle_s, conn.keep_alive_s - 1.0)
            if idle_s <= 0:
                conn.close()
                return
        conn.idle_until = loop.time() + idle_s
        origin.idle.append(conn)
        if origin.waiters:
            _wake_one(origin.waiters)
        sweep = self._sweep
        if sweep is None or sweep.when() > conn.idle_until:
            if sweep is not None:
                sweep.cancel()
            self._sweep = loop.call_at(conn.idle_until, self._expire)

    # -- internals ---------------------------------------------------------------------------

    def _idle(self, origin: _Origin) -> Connection | None:
        idle = origin.idle
        if not idle:
            return None
        now = self._running().time()
        while idle:
            conn = idle.pop()  # the freshest first
            if conn.closed:
                continue
            if conn.idle_until <= now:
                conn.close()  # idle too long: the upstream may be closing it right now
                continue
            return conn
        return None

    async def _connect(self, origin: _Origin) -> Connection:
        while self._limit and origin.open >= self._limit:
            conn = self._idle(origin)
            if conn is not None:
                return conn
            waiter = self._running().create_future()
            origin.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    _wake_one(origin.waiters)  # pass on the turn this request was given
                waiter.cancel()
                raise
            conn = self._idle(origin)
            if conn is not None:
                return conn
        loop = self._running()
        context = self._context() if origin.tls else None
        origin.open += 1
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                )
        except BaseException as exc:
            self._forget(origin)
            if isinstance(exc, TimeoutError):
                raise UpstreamError(
                    "connect", False, f"connect to {origin.url} timed out"
                ) from None
            if isinstance(exc, ssl.SSLError | ssl.CertificateError):
                raise UpstreamError(
                    "connect", False, f"TLS with {origin.url} failed: {exc}"
                ) from None
            if isinstance(exc, OSError):
                raise UpstreamError(
                    "connect", False, f"cannot connect to {origin.url}: {exc.strerror or exc}"
                ) from None
            raise
        conn.origin = origin.url
        conn.on_closed(lambda _: self._forget(origin))
        return conn

    def _expire(self) -> None:
        """Close the connections idle for ``keepalive``; come back when the next one is due."""
        self._sweep = None
        loop = self._running()
        now = loop.time()
        due: float | None = None
        for origin in self._origins.values():
            if not origin.idle:
                continue
            kept = []
            for conn in origin.idle:
                if conn.closed:
                    continue
                if conn.idle_until <= now:
                    conn.close()
                else:
                    kept.append(conn)
                    if due is None or conn.idle_until < due:
                        due = conn.idle_until
            origin.idle = kept
        if due is not None and not self._closed:
            self._sweep = loop.call_at(max(due, now + 0.05), self._expire)

    def _running(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _forget(self, origin: _Origin) -> None:
        origin.open -= 1
        if origin.waiters:
            _wake_one(origin.waiters)

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    @staticmethod
    async def _write(
        conn: Connection,
        origin: _Origin,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: Body,
    ) -> None:
        lines = "\r\n".join(map(": ".join, headers))
        if lines:
            lines += "\r\n"
        framing = ""
        if body is None:
            if method in _BODY_METHODS:
                framing = "Content-Length: 0\r\n"
        elif isinstance(body, bytes):
            framing = f"Content-Length: {len(body)}\r\n"
        elif not any(key.lower() == "content-length" for key, _ in headers):
            framing = "Transfer-Encoding: chunked\r\n"
        head = f"{method} {path} HTTP/1.1\r\nHost: {origin.host_header}\r\n{lines}{framing}\r\n"
        # Every line break is one the join put there: no value can start a header of its own.
        expected = len(headers) + (4 if framing else 3)
        if head.count("\n") != expected or head.count("\r") != expected:
            raise UpstreamError("protocol", False, "a request header holds a line break")
        transport = conn.transport
        assert transport is not None
        encoded = head.encode("utf-8", "surrogateescape")
        if body is None:
            transport.write(encoded)
        elif isinstance(body, bytes):
            transport.writelines((encoded, body))
        else:
            transport.write(encoded)
            await _stream(conn, body, chunked=framing != "")


async def _stream(conn: Connection, body: AsyncIterable[bytes], *, chunked: bool) -> None:
    """Write a streamed request body; stop early if the upstream already answered or left."""
    transport = conn.transport
    assert transport is not None
    try:
        async for chunk in body:
            if conn.closed or conn.status != 0:
                break
            if chunk:
                if chunked:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    transport.write(chunk)
                await conn.drain()
        else:
            if chunked and not conn.closed:
                transport.write(b"0\r\n\r\n")
            return
    except UpstreamError:
        raise
    except Exception as exc:
        raise UpstreamError("disconnected", True, f"the request body failed: {exc}") from exc
    conn.keep_alive = False  # answered before the body was sent: never reuse


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
