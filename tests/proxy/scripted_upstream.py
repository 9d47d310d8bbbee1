"""A scripted HTTP/1.1 upstream on raw asyncio streams, for the pooled client's tests.

Every accepted connection runs a handler that reads requests and writes exactly the bytes the
test scripts, so the response framing is under the test's control; the server records what it
received (request heads and bodies, connections accepted, connections the client closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from proxy.client import Body, UpstreamError, UpstreamResponse
from proxy.endpoints import Endpoint
from proxy.pool import PooledClient

WAIT = 10.0  # bound on one exchange: only turns a hang into a failure, never a timing check
_HEX = re.compile(rb"[0-9A-Fa-f]+")


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.values(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


class Conn:
    """One accepted connection, as its handler sees it."""

    def __init__(
        self,
        server: ScriptedServer,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.number = number  # 0 for the first connection the server accepted
        self.reader = reader
        self.writer = writer
        self.requests: list[Request] = []
        self.peer_closed = False  # the server read EOF (or a reset) from the client
        self.closed = False  # the server closed its end (its handler ended)

    async def request(self, *, body: bool = True) -> Request | None:
        """The next request (with its body unless ``body=False``); None if the client closed."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            assert not exc.partial, f"request head cut short: {exc.partial!r}"
            self.peer_closed = True
            return None
        except ConnectionError:
            self.peer_closed = True
            return None
        start, *lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = start.split(" ")
        headers = []
        for line in lines:
            name, colon, value = line.partition(":")
            assert colon and name == name.strip(), f"bad request header line {line!r}"
            headers.append((name, value.strip(" \t")))
        req = Request(method, target, version, headers)
        self.requests.append(req)
        self.server.requests.append(req)
        if body:
            req.body = await self.read_body(req)
        return req

    async def read_body(self, req: Request) -> bytes:
        """Read the request's body as its framing says (chunked decoded strictly)."""
        if (req.header("transfer-encoding") or "").lower() == "chunked":
            assert req.header("content-length") is None, "both Content-Length and chunked"
            parts: list[bytes] = []
            while True:
                line = (await self.reader.readuntil(b"\r\n"))[:-2]
                size_field = line.split(b";")[0]
                assert _HEX.fullmatch(size_field), f"bad chunk size line {line!r}"
                size = int(size_field, 16)
                if size == 0:
                    while await self.reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    return b"".join(parts)
                parts.append(await self.reader.readexactly(size))
                crlf = await self.reader.readexactly(2)
                assert crlf == b"\r\n", f"chunk data not followed by CRLF: {crlf!r}"
        length = req.header("content-length")
        return await self.reader.readexactly(int(length)) if length else b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def write_bytewise(self, data: bytes) -> None:
        """One byte per segment, with a pause between, so the client sees every split."""
        for i in range(len(data)):
            await self.write(data[i : i + 1])
            await asyncio.sleep(0.001)

    async def until_peer_closes(self) -> None:
        """Discard what the client sends until it closes the connection."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.peer_closed = True


Handler = Callable[[Conn], Awaitable[None]]
Reply = bytes | Callable[[Request], bytes]


class ScriptedServer:
    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.conns: list[Conn] = []
        self.requests: list[Request] = []
        self.open_now = 0
        self.max_open = 0
        self.errors: list[BaseException] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def accepted(self) -> int:
        return len(self.conns)

    def endpoint(self, base_path: str = "") -> Endpoint:
        scheme = "https" if self.ssl_context else "http"
        return Endpoint(f"{scheme}://127.0.0.1:{self.port}{base_path}")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(self, len(self.conns), reader, writer)
        self.conns.append(conn)
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self.handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.peer_closed = True
        except asyncio.CancelledError:
            pass  # the server is closing: end quietly (asyncio would log a cancelled handler)
        except Exception as exc:  # a framing assertion: reported when the server closes
            self.errors.append(exc)
        finally:
            self.open_now -= 1
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
            conn.closed = True
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in self.conns:
            conn.writer.transport.abort()  # even with unsent bytes for a client that left
        if self._server is not None:
            await self._server.wait_closed()


class Servers:
    """Starts scripted servers; closes them all at the end and reports handler failures."""

    def __init__(self) -> None:
        self.started: list[ScriptedServer] = []

    async def start(
        self, handler: Handler, ssl_context: ssl.SSLContext | None = None
    ) -> ScriptedServer:
        server = ScriptedServer(handler, ssl_context)
        await server.start()
        self.started.append(server)
        return server

    async def close(self) -> None:
        for server in self.started:
            await server.close()
        errors = [exc for server in self.started for exc in server.errors]
        assert not errors, f"the scripted upstream failed: {errors!r}"


class Clients:
    """Makes ``PooledClient``s; closes them all at the end.

    The default keep-alive is long, so that no test sees a connection closed by expiry
    unless it asks for a short one.
    """

    def __init__(self) -> None:
        self.made: list[PooledClient] = []

    def __call__(
        self,
        *,
        keepalive: float = 60.0,
        limit_per_host: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> PooledClient:
        client = PooledClient(
            connect_timeout=5.0,
            keepalive=keepalive,
            limit_per_host=limit_per_host,
            ssl_context=ssl_context,
        )
        self.made.append(client)
        return client

    async def close(self) -> None:
        for client in self.made:
            await client.close()


def response(
    body: bytes = b"",
    *,
    status: str = "200 OK",
    headers: Sequence[tuple[str, str]] = (),
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    """A response with the given head; a Content-Length for ``body`` unless ``length=False``."""
    lines = [f"{version} {status}", *(f"{name}: {value}" for name, value in headers)]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def answer(reply: Reply) -> Handler:
    """Answer every request on the connection with ``reply``, keeping it open."""

    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            await conn.write(reply if isinstance(reply, bytes) else reply(req))

    return handler


def answer_once_then_close(reply: bytes) -> Handler:
    """Answer the first request with ``reply``, then close the connection."""

    async def handler(conn: Conn) -> None:
        if await conn.request() is not None:
            await conn.write(reply)

    return handler


def answer_then_hold(reply: bytes) -> Handler:
    """Answer the first request with ``reply``; keep the connection open until the client closes."""

    async def handler(conn: Conn) -> None:
        if await conn.request() is not None:
            await conn.write(reply)
            await conn.until_peer_closes()

    return handler


def per_connection(*handlers: Handler) -> Handler:
    """Connection n runs ``handlers[n]``; later connections run the last one."""

    async def handler(conn: Conn) -> None:
        await handlers[min(conn.number, len(handlers) - 1)](conn)

    return handler


async def read_all(resp: UpstreamResponse) -> bytes:
    parts: list[bytes] = []
    while chunk := await resp.read():
        parts.append(chunk)
    return b"".join(parts)


async def fetch(
    client: PooledClient,
    endpoint: Endpoint,
    method: str = "GET",
    target: str = "/",
    headers: Sequence[tuple[str, str]] = (),
    body: Body = None,
    *,
    release: bool = True,
) -> tuple[UpstreamResponse, bytes]:
    """One complete exchange: send, read the body to the end, release the connection.

    With ``release=False`` the caller releases it, after looking at the headers (a released
    response need not keep them).
    """
    async with asyncio.timeout(WAIT):
        resp = await client.send(endpoint, method, target, list(headers), body)
        data = await read_all(resp)
    if release:
        resp.release()
    return resp, data


async def failing_fetch(
    client: PooledClient, endpoint: Endpoint, method: str = "GET", body: Body = None
) -> UpstreamError:
    """An exchange that must fail in ``send`` or in ``read``; returns the error."""
    resp: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(WAIT):
            resp = await client.send(endpoint, method, "/", [], body)
            data = await read_all(resp)
    except UpstreamError as exc:
        if resp is not None:
            resp.close()
        return exc
    resp.release()
    raise AssertionError(f"the exchange succeeded: {resp.status} {data!r}")


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling state owned by the server
            await asyncio.sleep(0.01)
