"""The upstream HTTP client, behind an interface of two small types.

The forwarder only knows ``UpstreamClient.send`` and ``UpstreamResponse``; every transport
error arrives as an ``UpstreamError`` whose ``kind`` says what happened and whose ``sent``
says whether the upstream may have received the request (the rule for retrying a POST). The
implementation is ``proxy.pool.PooledClient``: no total timeout (a healthy stream may last
an hour; the forwarder's watchdog owns the deadlines), no decompression (bytes pass through
as sent), no cookies, no redirects (passed to the client) and no retries of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Literal, Protocol

from proxy.endpoints import Endpoint

ErrorKind = Literal["connect", "timeout", "protocol", "disconnected"]

Body = bytes | AsyncIterable[bytes] | None


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange.

    ``kind``: ``connect`` (no connection was made: safe to retry anything), ``timeout``,
    ``protocol`` (malformed response), ``disconnected`` (connection lost).
    ``sent``: the upstream may have received the request.
    """

    def __init__(self, kind: ErrorKind, sent: bool, detail: str) -> None:
        super().__init__(detail)
        self.kind: ErrorKind = kind
        self.sent = sent


class UpstreamResponse(Protocol):
    status: int
    reason: str
    content_length: int | None

    def header_items(self) -> Iterable[tuple[str, str]]: ...

    def header(self, name: str) -> str | None: ...

    async def read(self) -> bytes:
        """The next chunk of the body as it arrives; ``b""`` at the end."""
        ...

    def pipe(self, sink: Callable[[bytes], bool] | None) -> None:
        """Offer each body chunk to ``sink`` as it arrives, before ``read`` sees it.

        ``sink`` answers whether it took the chunk. One it refuses, and every one after it
        until ``read`` has caught up, goes to ``read``: the order never changes. It is
        called from the connection's own callback, so it must not block or raise.
        """
        ...

    def forget_head(self) -> None:
        """The head was read: its headers may go (a long stream need not hold them)."""
        ...

    def arrived(self) -> bytes | None:
        """The whole body if all of it has already arrived (and none was read), else None."""
        ...

    def release(self) -> None:
        """The body was read to the end: the connection may be reused."""
        ...

    def close(self) -> None:
        """Abandon the exchange and close the connection (the upstream stops generating)."""
        ...


class UpstreamClient(Protocol):
    async def send(
        self,
        endpoint: Endpoint,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Body,
    ) -> UpstreamResponse:
        """Send one request; return once the response head has arrived."""
        ...

    def has_room(self, endpoint: Endpoint) -> bool:
        """A request to ``endpoint`` would get a connection without waiting for one (always,
        without ``max_connections_per_upstream``): shadow copies never queue behind users."""
        ...

    async def close(self) -> None: ...
