"""The pooled HTTP/1.1 upstream client, black box: the request bytes and the response framing.

Every upstream here is a scripted raw TCP server (``scripted_upstream``), so each test controls
the exact bytes and their splits. Pooling, limits and back-pressure: ``test_pool_reuse.py``;
TLS: ``test_pool_tls.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from proxy.client import UpstreamError
from proxy.pool import PooledClient
from tests.proxy.scripted_upstream import (
    WAIT,
    Conn,
    Servers,
    answer,
    answer_once_then_close,
    answer_then_hold,
    failing_fetch,
    fetch,
    per_connection,
    read_all,
    response,
)

# --- the request as the upstream receives it ---


@pytest.mark.parametrize(("base", "sent_base"), [("", ""), ("/base", "/base"), ("/a/b/", "/a/b")])
async def test_request_line_host_and_headers_in_order(
    servers: Servers, client: PooledClient, base: str, sent_base: str
) -> None:
    server = await servers.start(answer(response(b"ok")))
    headers = [
        ("X-One", "1"),
        ("Accept", "text/event-stream"),
        ("x-one", "2"),
        ("Authorization", "Bearer k"),
    ]
    resp, body = await fetch(client, server.endpoint(base), "GET", "/v1/chat?x=1&y=a%20b", headers)
    assert (resp.status, body) == (200, b"ok")
    [req] = server.requests
    assert (req.method, req.target, req.version) == (
        "GET",
        f"{sent_base}/v1/chat?x=1&y=a%20b",
        "HTTP/1.1",
    )
    assert req.values("host") == [f"127.0.0.1:{server.port}"]
    # A GET without a body carries no framing header and nothing the caller did not give.
    assert [h for h in req.headers if h[0].lower() != "host"] == headers
    assert req.body == b""


async def test_bytes_body_is_sent_with_its_content_length(
    servers: Servers, client: PooledClient
) -> None:
    server = await servers.start(answer(response(b"ok")))
    payload = b'{"model": "m", "messages": []}'
    await fetch(
        client, server.endpoint(), "POST", "/v1/x", [("Content-Type", "application/json")], payload
    )
    [req] = server.requests
    assert req.values("content-length") == [str(len(payload))]
    assert req.header("transfer-encoding") is None
    assert req.header("content-type") == "application/json"
    assert req.body == payload


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_missing_body_is_content_length_zero_for_methods_with_a_body(
    servers: Servers, client: PooledClient, method: str
) -> None:
    server = await servers.start(answer(response(b"ok")))
    _, body = await fetch(client, server.endpoint(), method, "/x")
    assert body == b"ok"
    [req] = server.requests
    assert req.method == method
    assert req.values("content-length") == ["0"]
    assert req.header("transfer-encoding") is None
    assert req.body == b""


async def test_async_iterable_body_is_sent_chunked(servers: Servers, client: PooledClient) -> None:
    server = await servers.start(answer(lambda req: response(b"got %d" % len(req.body))))
    parts = [b"hello ", b"", b"x" * 70_000, b"\r\n0\r\n\r\n", b"world"]

    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            await asyncio.sleep(0)
            yield part

    _, body = await fetch(client, server.endpoint(), "POST", "/up", [("X-A", "1")], stream())
    [req] = server.requests
    assert req.header("transfer-encoding") == "chunked"
    assert req.header("content-length") is None
    assert req.body == b"".join(parts)  # an empty part is not the last chunk
    assert body == b"got %d" % len(req.body)


async def test_async_iterable_body_with_a_content_length_is_streamed_as_is(
    servers: Servers, client: PooledClient
) -> None:
    server = await servers.start(answer(response(b"ok")))
    parts = [b"a" * 1000, b"b" * 50_000, b"c"]
    total = sum(map(len, parts))

    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    await fetch(client, server.endpoint(), "PUT", "/up", [("Content-Length", str(total))], stream())
    [req] = server.requests
    assert req.values("content-length") == [str(total)]
    assert req.header("transfer-encoding") is None
    assert req.body == b"".join(parts)


@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
async def test_a_line_break_in_a_header_value_never_reaches_the_upstream(
    servers: Servers, client: PooledClient, brk: str
) -> None:
    server = await servers.start(answer(response(b"ok")))
    headers = [("X-Note", f"a{brk}X-Injected: 1"), ("X-After", "z")]
    with contextlib.suppress(UpstreamError):  # refusing the request is one right answer
        await fetch(client, server.endpoint(), "GET", "/", headers)
    for req in server.requests:
        assert req.header("x-injected") is None
        assert not any(c in name + value for name, value in req.headers for c in "\r\n")


# --- response bodies, however the bytes are split ---


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Head: h\r\n\r\n"
CHUNKED_BODY = (
    b"5;name=value\r\nhello\r\nA\r\n world!!!!\r\n1\r\n.\r\n"
    b"0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
)


async def test_chunked_body_split_at_every_byte(servers: Servers, client: PooledClient) -> None:
    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            split = int(req.target.removeprefix("/"))
            await conn.write(CHUNKED_HEAD + CHUNKED_BODY[:split])
            await asyncio.sleep(0.005)
            await conn.write(CHUNKED_BODY[split:])

    server = await servers.start(handler)
    for split in range(len(CHUNKED_BODY) + 1):
        resp, body = await fetch(client, server.endpoint(), "GET", f"/{split}", release=False)
        assert body == b"hello world!!!!.", f"split at {split}"
        assert resp.content_length is None
        assert resp.header("x-head") == "h"
        # Trailers are consumed (the connection stays usable) but never become headers.
        assert resp.header("x-trailer") is None
        assert {name.lower() for name, _ in resp.header_items()} == {"transfer-encoding", "x-head"}
        resp.release()
    assert server.accepted == 1


@pytest.mark.parametrize(
    "sent",
    [b"", b"3\r\n", b"10\r\nabc", b"3\r\nabc", b"3\r\nabc\r\n"],
    ids=["head-only", "size-line", "mid-chunk", "before-crlf", "between-chunks"],
)
async def test_chunked_body_cut_short_is_disconnected(
    servers: Servers, client: PooledClient, sent: bytes
) -> None:
    server = await servers.start(answer_once_then_close(CHUNKED_HEAD + sent))
    error = await failing_fetch(client, server.endpoint())
    assert (error.kind, error.sent) == ("disconnected", True)


async def test_content_length_body_cut_short_is_disconnected(
    servers: Servers, client: PooledClient
) -> None:
    server = await servers.start(
        answer_once_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
    )
    async with asyncio.timeout(WAIT):
        resp = await client.send(server.endpoint(), "GET", "/", [], None)
        assert resp.content_length == 10
        with pytest.raises(UpstreamError) as info:
            await read_all(resp)
    resp.close()
    assert (info.value.kind, info.value.sent) == ("disconnected", True)


async def test_malformed_chunk_size_fails_the_read(servers: Servers, client: PooledClient) -> None:
    server = await servers.start(answer_then_hold(CHUNKED_HEAD + b"zz\r\nabc\r\n0\r\n\r\n"))
    error = await failing_fetch(client, server.endpoint())
    assert error.sent


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
    ],
    ids=["http/1.0", "connection-close"],
)
async def test_close_delimited_body_is_read_until_the_upstream_closes(
    servers: Servers, client: PooledClient, head: bytes
) -> None:
    payload = b"0123456789abcdef" * 20_000

    async def until_close(conn: Conn) -> None:
        await conn.request()
        await conn.write(head)
        for i in range(0, len(payload), 10_000):
            await conn.write(payload[i : i + 10_000])

    server = await servers.start(per_connection(until_close, answer(response(b"again"))))
    resp, body = await fetch(client, server.endpoint())
    assert resp.content_length is None
    assert body == payload
    _, body = await fetch(client, server.endpoint())
    assert body == b"again"
    assert server.accepted == 2


# --- responses without a body, and 1xx ---


async def test_informational_responses_are_skipped(servers: Servers, client: PooledClient) -> None:
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    )
    final = response(b"ok", headers=[("X-Final", "yes")])
    server = await servers.start(answer(interim + final))
    for _ in range(2):
        resp, body = await fetch(client, server.endpoint(), "POST", "/", [], b"{}", release=False)
        assert (resp.status, resp.reason, body) == (200, "OK", b"ok")
        assert resp.header("x-final") == "yes"
        assert resp.header("link") is None
        assert {n.lower() for n, _ in resp.header_items()} == {"x-final", "content-length"}
        resp.release()
    assert server.accepted == 1


async def test_head_response_has_no_body_and_the_connection_is_reused(
    servers: Servers, client: PooledClient
) -> None:
    server = await servers.start(
        answer(
            lambda req: (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                if req.method == "HEAD"
                else response(b"0123456789")
            )
        )
    )
    resp, body = await fetch(client, server.endpoint(), "HEAD")
    assert (resp.status, body) == (200, b"")
    _, body = await fetch(client, server.endpoint(), "GET")
    assert body == b"0123456789"
    assert server.accepted == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("204 No Content", []),
        ("304 Not Modified", []),
        ("304 Not Modified", [("Content-Length", "10"), ("ETag", '"x"')]),
    ],
    ids=["204", "304", "304-with-length"],
)
async def test_bodiless_statuses_end_at_once_and_the_connection_is_reused(
    servers: Servers, client: PooledClient, status: str, headers: list[tuple[str, str]]
) -> None:
    first = response(status=status, headers=headers, length=False)
    server = await servers.start(
        answer(lambda req: first if req.target == "/first" else response(b"next"))
    )
    resp, body = await fetch(client, server.endpoint(), "GET", "/first")
    assert (resp.status, body) == (int(status[:3]), b"")
    _, body = await fetch(client, server.endpoint(), "GET", "/next")
    assert body == b"next"
    assert server.accepted == 1
