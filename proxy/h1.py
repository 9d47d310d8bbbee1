"""One HTTP/1.1 connection to an upstream, as an ``asyncio.Protocol``: one exchange at a time.

The response is parsed by llhttp (through httptools) as bytes arrive; the proxy only ever
reads what it relays. Framing is llhttp's: chunked, Content-Length, and bodies that end when
the upstream closes (HTTP/1.0, or ``Connection: close`` without a length; llhttp cannot see
that end, so ``connection_lost`` completes them). 1xx answers are skipped, and 204, 304 and
answers to HEAD have no body.

Back-pressure runs both ways: reading from the upstream pauses while more than
``HIGH_WATER`` bytes wait for the client (the forwarder stops reading while the client's
socket is full), and a request body waits for ``resume_writing`` when the upstream is slow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import httptools

from proxy.client import UpstreamError

HIGH_WATER = 256 * 1024
"""Body bytes held for a slow client before the upstream socket is no longer read."""
LOW_WATER = 64 * 1024
MAX_HEAD = 64 * 1024
"""The largest response head accepted (status line and headers), as nginx's 4 × 16 KiB."""

_NO_BODY = frozenset({204, 304})
_OWS = b" \t"


class HeadTooLarge(Exception):
    pass


class Connection(asyncio.Protocol):
    """Made by ``loop.create_connection``; owned by the pool while idle, by one exchange else.

    ``opened`` is the pool's count of this origin's connections, given back once on close.
    """

    __slots__ = (
        "_body",
        "_body_waiter",
        "_buffered",
        "_drain_waiter",
        "_head_bytes",
        "_head_size",
        "_head_waiter",
        "_loop",
        "_parser",
        "_reading_paused",
        "_release",
        "_sink",
        "busy",
        "chunked",
        "closed",
        "complete",
        "connection",
        "content_length",
        "content_type",
        "eof_ends_body",
        "error",
        "head_only",
        "headers",
        "idle_until",
        "keep_alive",
        "keep_alive_s",
        "origin",
        "reason",
        "status",
        "transport",
        "write_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._release: Callable[[Connection], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False
        self.idle_until = 0.0
        """While pooled: the time after which the connection is not used again."""
        self.origin = ""
        """The pool this connection belongs to (its upstream origin)."""
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._body: list[bytes] = []  # a deque would allocate 64 slots for a stream's 1
        self._body_waiter: asyncio.Future[None] | None = None
        self._sink: Callable[[bytes], bool] | None = None
        self._head_waiter: asyncio.Future[None] | None = None
        self._reset(False)

    def _reset(self, head_only: bool) -> None:
        self.head_only = head_only
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.content_length: int | None = None
        self.content_type: str | None = None
        self.connection: str | None = None
        self.chunked = False
        self.eof_ends_body = False
        self.keep_alive = False
        self.keep_alive_s: float | None = None
        """The idle time the upstream announced (``Keep-Alive: timeout=N``), if it did."""
        self.complete = False
        self.error: UpstreamError | None = None
        self._head_size = 0
        self._head_bytes = 0
        self._buffered = 0

    # -- the exchange (called by the pool) ---------------------------------------------------

    def begin(self, head_only: bool) -> None:
        """Start an exchange on this (new or idle) connection."""
        if self.head_only:
            # llhttp still expected the body an answer to HEAD announced: start afresh.
            self._parser = httptools.HttpResponseParser(self)
        self._reset(head_only)
        self._body.clear()
        self._sink = None
        self.busy = True
        self._head_waiter = self._loop.create_future()

    async def head(self) -> None:
        """Wait for the final response head; raise the exchange's error if it came first."""
        waiter = self._head_waiter
        if waiter is not None:
            await waiter
        if self.status == 0:
            assert self.error is not None
            raise self.error

    async def drain(self) -> None:
        if self.write_paused and not self.closed and self.status == 0:
            waiter = self._drain_waiter = self._loop.create_future()
            await waiter

    async def read(self) -> bytes:
        """The next body bytes (all that arrived, joined); ``b""`` once the body is complete."""
        body = self._body
        while not body:
            if self.complete:
                return b""
            if self.error is not None:
                raise self.error
            waiter = self._body_waiter = self._loop.create_future()
            await waiter
        if len(body) == 1:
            chunk = body.pop()
        else:
            chunk = b"".join(body)
            body.clear()
        self._buffered = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunk

    def pipe(self, sink: Callable[[bytes], bool] | None) -> None:
        """Offer body chunks to ``sink`` as they arrive, from this protocol's callback.

        A chunk the sink refuses (it answers False), and every chunk after it while one
        waits, is kept for ``read``: the order never changes. ``None`` stops offering.
        """
        self._sink = sink

    def arrived(self) -> bytes | None:
        """The whole body, if it is complete and nothing of it was read yet."""
        if not self.complete or self.error is not None:
            return None
        body = self._body
        if len(body) == 1:
            return body.pop()
        whole = b"".join(body)
        body.clear()
        return whole

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed

    def close(self) -> None:
        """Abandon the connection: the upstream sees it closed (and stops generating)."""
        if self.transport is not None and not self.closed:
            self.transport.close()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: no isinstance here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # Nothing was asked: an idle upstream that talks is out of step. Drop it.
            self.close()
            return
        waiting = self.status == 0
        if waiting:
            # llhttp keeps a status line or header still arriving in memory without a bound.
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
            if waiting and self.status == 0 and self._head_bytes > MAX_HEAD:
                raise HeadTooLarge(f"the response head is larger than {MAX_HEAD} bytes")
        except HeadTooLarge as exc:
            self._fail(str(exc))
        except httptools.HttpParserUpgrade:
            self._fail("the upstream switched protocols, which the proxy never asks")
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            reason = str(cause) if isinstance(cause, HeadTooLarge) else str(exc)
            self._fail(reason)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed response: {exc}")

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost completes or fails the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy and not self.complete and self.error is None:
            if self.status != 0 and self.eof_ends_body and exc is None:
                self.complete = True  # the close delimits the body
            elif self.status == 0:
                self.error = UpstreamError(
                    "disconnected", True, "the upstream closed the connection before answering"
                )
            else:
                self.error = UpstreamError(
                    "disconnected", True, "the upstream closed the connection mid-body"
                )
        self._wake()
        release = self._release
        if release is not None:
            self._release = None
            release(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    def on_closed(self, release: Callable[[Connection], None]) -> None:
        """Call ``release(self)`` once the connection is lost (the pool's slot count)."""
        self._release = release

    # -- llhttp callbacks --------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        if self.status != 0:
            return  # bytes after the response: out of step (see on_headers_complete)
        self._head_size += len(status)
        if self._head_size > MAX_HEAD:
            raise HeadTooLarge(f"the response head is larger than {MAX_HEAD} bytes")
        self.reason += status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.status != 0:
            return  # a trailer: not relayed
        size = self._head_size = self._head_size + len(name) + len(value) + 4
        if size > MAX_HEAD:
            raise HeadTooLarge(f"the response head is larger than {MAX_HEAD} bytes")
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace (RFC 9110 §5.5)
        key = name.decode("latin-1")
        text = value.decode("utf-8", "surrogateescape")
        self.headers.append((key, text))
        if len(name) in (10, 12, 14, 17):
            lower = name.lower()
            if lower == b"content-type":
                self.content_type = text
            elif lower == b"content-length":
                self.content_length = int(value)
            elif lower == b"connection":
                self.connection = text
            elif lower == b"keep-alive":
                self.keep_alive_s = _timeout_of(value)
            elif lower == b"transfer-encoding":
                self.chunked = True  # llhttp refuses any coding but a final chunked

    def on_headers_complete(self) -> None:
        if self.status != 0:
            self.keep_alive = False  # a second answer to one request: never reuse
            return
        parser = self._parser
        status = parser.get_status_code()
        if status < 200:
            self.reason = ""
            self.headers = []
            self.content_length = self.content_type = self.connection = None
            self.chunked = False
            self._head_size = 0
            return  # 1xx: informational; the final answer follows
        self.status = status
        self.keep_alive = parser.should_keep_alive()
        if self.head_only or status in _NO_BODY:
            self.complete = True
        elif self.content_length is None and not self.chunked:
            self.eof_ends_body = True
            self.keep_alive = False
        # The answer is here: a request body still going (stuck, maybe) stops (pool._stream).
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return  # the body of a second answer
        sink = self._sink
        if sink is not None and not self._body and sink(body):
            return
        self._body.append(body)
        buffered = self._buffered = self._buffered + len(body)
        if buffered > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # the end of a 1xx
        if self.complete and not self.head_only and self.status not in _NO_BODY:
            self.keep_alive = False  # the end of a second answer
        self.complete = True
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- internals ---------------------------------------------------------------------------

    def _fail(self, detail: str) -> None:
        if self.error is None and not self.complete:
            self.error = UpstreamError("protocol", True, detail)
        self.close()
        self._wake()

    def _wake(self) -> None:
        for waiter in (self._head_waiter, self._body_waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


def _timeout_of(value: bytes) -> float | None:
    """``timeout=N`` of a ``Keep-Alive`` header (RFC 7230 appendix A.1.2), None without one."""
    for part in value.split(b","):
        name, _, number = part.strip().partition(b"=")
        if name.strip().lower() == b"timeout":
            try:
                return max(float(number.strip()), 0.0)
            except ValueError:
                return None
    return None
