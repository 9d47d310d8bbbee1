"""The answer's way back: the upstream's head and body relayed to the client as they arrive.

A body that arrived whole with its head (a JSON answer, usually) goes out as one response in
one write. A body still arriving (a stream) is written from the upstream connection's own
callback, chunk by chunk, while the client's socket takes it (``Pipe``): no future, no task
wake-up and no coroutine frames per chunk. When the client's socket is full, or has gone,
the pipe refuses the chunk; it waits in the connection (which stops reading the upstream
past its high-water mark), and the handler's task writes it through aiohttp, which waits
for the socket to drain once 64 KiB of its own writes are unsent. The pipe refuses while the
task writes, and the connection queues every chunk behind one already waiting, so the order
of bytes never changes. A slow client holds at most about 64 KiB (``ROOM``) + 64 KiB
(aiohttp's) + 256 KiB (the connection's high water) + one read of its stream in memory.

Every byte the upstream sent reaches the client. If the upstream breaks mid-body, the
client's connection is closed without a clean end, so the client sees a cut.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from config.shadow import CAPTURE_BYTES
from proxy.answers import abort
from proxy.client import UpstreamError, UpstreamResponse
from proxy.endpoints import EndpointPool
from proxy.exchange import Exchange
from proxy.headers import response_headers
from proxy.shadow import Side
from proxy.stats import read_tail
from proxy.watchdog import Watchdog

log = logging.getLogger("splitgate.proxy")

ROOM = 64 * 1024
"""Bytes the client's socket may hold unsent before the pipe hands chunks to the task."""
_SMALL = 2048
"""Chunks under this are framed by one copy; larger ones go out as a vector."""
_GATEWAY_ERRORS = frozenset({502, 503, 504})
_NO_BODY = frozenset({204, 304})


class Pipe:
    """Writes body chunks to the client from the upstream connection's callback.

    Called with each chunk as it arrives; answers whether it took it. It keeps the tail of
    the body (the last two chunks, for the usage report and the stream's end), moves the
    idle deadline forward and notes the first byte's time.
    """

    __slots__ = (
        "_chunked",
        "_dog",
        "_exchange",
        "_idle",
        "_loop",
        "_transport",
        "held",
        "last",
        "previous",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        chunked: bool,
        loop: asyncio.AbstractEventLoop,
        dog: Watchdog,
        idle: float,
        exchange: Exchange,
    ) -> None:
        self._transport = transport
        self._chunked = chunked
        self._loop = loop
        self._dog = dog
        self._idle = idle
        self._exchange = exchange
        self.held = False
        """The task is writing a backlog: refuse, so that no chunk overtakes it."""
        self.previous = self.last = b""
        """The body's last two chunks (no tuple per chunk)."""

    def __call__(self, chunk: bytes) -> bool:
        transport = self._transport
        if self.held or transport.is_closing() or transport.get_write_buffer_size() > ROOM:
            return False
        if not self._chunked:
            transport.write(chunk)
        elif len(chunk) < _SMALL:
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
        self.passed(chunk)
        return True

    def passed(self, chunk: bytes) -> None:
        """A chunk reached the client's socket (here or through the task)."""
        now = self._loop.time()
        self._dog.deadline = now + self._idle
        exchange = self._exchange
        if exchange.first_byte is None:
            exchange.first_byte = now
        self.previous = self.last
        self.last = chunk


class CapturePipe(Pipe):
    """A ``Pipe`` that also keeps the first ``CAPTURE_BYTES`` of the body, for a mirrored
    request's pair (``proxy.shadow``): only mirrored requests pay for it."""

    __slots__ = ("_side", "_size")

    def __init__(
        self,
        transport: asyncio.Transport,
        chunked: bool,
        loop: asyncio.AbstractEventLoop,
        dog: Watchdog,
        idle: float,
        exchange: Exchange,
        side: Side,
    ) -> None:
        super().__init__(transport, chunked, loop, dog, idle, exchange)
        self._side = side
        self._size = 0

    def passed(self, chunk: bytes) -> None:
        super().passed(chunk)
        if self._size < CAPTURE_BYTES:
            self._side.body.append(chunk)
            self._size += len(chunk)
        else:
            self._side.truncated = True


class Relay:
    """Relays one upstream answer to the client; ``stamp`` adds the proxy's own headers."""

    def __init__(
        self,
        pool: EndpointPool,
        idle: float,
        stamp: Callable[[web.StreamResponse, Exchange], None],
    ) -> None:
        self._pool = pool
        self._idle = idle
        self._stamp = stamp

    async def answer(
        self,
        request: web.BaseRequest,
        upstream: UpstreamResponse,
        dog: Watchdog,
        exchange: Exchange,
        loop: asyncio.AbstractEventLoop,
    ) -> web.StreamResponse:
        endpoint = exchange.endpoint
        assert endpoint is not None and exchange.track is not None
        status = upstream.status
        if status in _GATEWAY_ERRORS:
            self._pool.failed(endpoint, exchange.track.balancer.endpoints)
        else:
            self._pool.succeeded(endpoint)
        if status >= 500:
            exchange.error = "upstream_5xx"
        elif status == 429:
            exchange.error = "upstream_429"
        headers = response_headers(upstream.header_items(), upstream.header("connection"))
        content_type = upstream.header("content-type")
        upstream.forget_head()
        sse = content_type is not None and content_type.startswith("text/event-stream")
        if content_type is not None and request.method != "HEAD" and status not in _NO_BODY:
            whole = upstream.arrived()
            if whole is not None:
                # All of it is here (a JSON answer, usually): one response, one write.
                return self._whole(upstream, whole, headers, content_type, sse, exchange, loop)
        response = web.StreamResponse(
            status=status, reason=upstream.reason or None, headers=headers
        )
        exchange.response = response
        if upstream.content_length is not None and request.method != "HEAD":
            response.content_length = upstream.content_length
        if sse:
            response.headers["X-Accel-Buffering"] = "no"
            response.headers.setdefault("Cache-Control", "no-cache")
        self._stamp(response, exchange)
        dog.set(loop.time() + self._idle, "idle")
        try:
            await response.prepare(request)
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("the client's connection is gone")
            chunked = response.headers.get("Transfer-Encoding") == "chunked"
            ticket = exchange.shadow
            if ticket is None:
                pipe = Pipe(transport, chunked, loop, dog, self._idle, exchange)
            else:
                ticket.primary.sse = sse
                pipe = CapturePipe(
                    transport, chunked, loop, dog, self._idle, exchange, ticket.primary
                )
            upstream.pipe(pipe)
            read = upstream.read
            write = response.write
            while chunk := await read():
                # The pipe refused it (the client's socket is full, or gone): the task writes
                # it, and aiohttp waits for the socket to drain. Meanwhile the pipe refuses.
                pipe.held = True
                pipe.passed(chunk)
                await write(chunk)
                pipe.held = False
            if exchange.first_byte is None:
                exchange.first_byte = loop.time()  # an empty body: its end is the first byte
            await response.write_eof()
        except UpstreamError as exc:
            log.debug("upstream %s broke mid-body: %s", endpoint.url, exc)
            exchange.error = "cut"
            upstream.close()
            abort(request, response)
            return response
        except ConnectionError:
            exchange.error = "client_gone"
            upstream.close()  # the client went away: stop the generation upstream
            return response
        upstream.release()
        if status < 300 and (sse or (content_type is not None and "json" in content_type)):
            self._read_tail(pipe.previous + pipe.last, sse, exchange)
        return response

    def _whole(
        self,
        upstream: UpstreamResponse,
        body: bytes,
        headers: list[tuple[str, str]],
        content_type: str,
        sse: bool,
        exchange: Exchange,
        loop: asyncio.AbstractEventLoop,
    ) -> web.Response:
        """The answer when its whole body arrived with its head; the handler stamps it."""
        exchange.first_byte = loop.time()
        response = web.Response(
            body=body, status=upstream.status, reason=upstream.reason or None, headers=headers
        )
        if sse:
            response.headers["X-Accel-Buffering"] = "no"
            response.headers.setdefault("Cache-Control", "no-cache")
        ticket = exchange.shadow
        if ticket is not None:
            ticket.primary.sse = sse
            ticket.primary.body.append(body[:CAPTURE_BYTES])
            ticket.primary.truncated = len(body) > CAPTURE_BYTES
        upstream.release()
        if upstream.status < 300 and (sse or "json" in content_type):
            self._read_tail(body, sse, exchange)
        return response

    @staticmethod
    def _read_tail(tail: bytes, sse: bool, exchange: Exchange) -> None:
        facts = read_tail(tail, sse)
        stats = exchange.stats()
        assert stats is not None
        if facts.prompt_tokens is not None or facts.completion_tokens is not None:
            stats.add_usage(facts.prompt_tokens or 0, facts.completion_tokens or 0)
        if not facts.finished:
            exchange.error = "truncated"
        ticket = exchange.shadow
        if ticket is not None:
            ticket.primary.prompt = facts.prompt_tokens
            ticket.primary.completion = facts.completion_tokens
            ticket.primary.finished = facts.finished
