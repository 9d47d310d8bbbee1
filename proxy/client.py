"""The upstream HTTP client, behind an interface of two small types.

The forwarder only knows ``UpstreamClient.send`` and ``UpstreamResponse``; every transport
error arrives as an ``UpstreamError`` whose ``kind`` says what happened and whose ``sent``
says whether the upstream may have received the request (the rule for retrying a POST). A
leaner client (a pooled ``asyncio.Protocol``) can replace the aiohttp one without touching
routing, headers or metrics.

aiohttp's client defaults are wrong for a proxy and are all overridden here: no total
timeout (a healthy stream may last an hour), no decompression (bytes pass through as sent),
no cookie jar (one client's cookies must never reach another's request), no redirects
(passed to the client), and a keep-alive shorter than typical upstream idle timeouts.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from typing import Literal, Protocol

import aiohttp
from yarl import URL

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

    async def close(self) -> None: ...


class _AiohttpResponse:
    __slots__ = ("_resp", "content_length", "read", "reason", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.reason = resp.reason or ""
        self.content_length = resp.content_length
        self.read = self._read

    def header_items(self) -> Iterable[tuple[str, str]]:
        return self._resp.headers.items()

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    async def _read(self) -> bytes:
        try:
            return await self._resp.content.readany()
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamError("disconnected", True, f"upstream body cut short: {exc}") from None
        except aiohttp.ClientConnectionError as exc:
            raise UpstreamError("disconnected", True, f"upstream connection lost: {exc}") from None

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


class AiohttpClient:
    """``UpstreamClient`` on one shared ``aiohttp.ClientSession`` per process."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        keepalive: float,
        limit_per_host: int = 0,
    ) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=limit_per_host,
            keepalive_timeout=keepalive,
            ttl_dns_cache=10,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # Idle and first-byte deadlines belong to the forwarder's watchdog; only the
            # TCP connect itself is bounded here (not the wait for a pool slot).
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            raise_for_status=False,
        )

    async def send(
        self,
        endpoint: Endpoint,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: Body,
    ) -> UpstreamResponse:
        url = URL(endpoint.origin + endpoint.base_path + target, encoded=True)
        try:
            resp = await self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(
                "connect", False, f"cannot connect to {endpoint.url}: {exc.os_error}"
            ) from None
        except aiohttp.ServerTimeoutError as exc:
            # Raised for the TCP connect deadline (sock_connect): nothing was sent.
            raise UpstreamError(
                "connect", False, f"connect to {endpoint.url} timed out: {exc}"
            ) from None
        except aiohttp.ClientResponseError as exc:
            raise UpstreamError(
                "protocol", True, f"bad response from {endpoint.url}: {exc.message}"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise UpstreamError(
                "disconnected", True, f"{endpoint.url} closed the connection: {exc}"
            ) from None
        except TimeoutError as exc:
            raise UpstreamError("timeout", True, f"{endpoint.url} timed out: {exc}") from None
        return _AiohttpResponse(resp)

    async def close(self) -> None:
        await self._session.close()
