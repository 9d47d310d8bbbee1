"""The pooled upstream client, black box: response heads (split, large, malformed) and headers.

The upstreams are scripted raw TCP servers (``scripted_upstream``).
"""

from __future__ import annotations

import pytest

from proxy.pool import PooledClient
from tests.proxy.scripted_upstream import (
    Conn,
    Servers,
    answer,
    answer_then_hold,
    failing_fetch,
    fetch,
    response,
)


async def test_response_arriving_one_byte_at_a_time(servers: Servers, client: PooledClient) -> None:
    data = response(b"hello", status="404 Not Found", headers=[("Content-Type", "text/plain")])

    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.write_bytewise(data)

    server = await servers.start(handler)
    for _ in range(2):
        resp, body = await fetch(client, server.endpoint(), release=False)
        assert (resp.status, resp.reason) == (404, "Not Found")
        assert resp.header("content-type") == "text/plain"
        assert resp.content_length == 5
        assert body == b"hello"
        resp.release()
    assert server.accepted == 1


async def test_response_headers_as_sent(servers: Servers, client: PooledClient) -> None:
    head = (
        b"HTTP/1.1 201 Created Here\r\n"
        b"Content-Type: application/json\r\n"
        b"Set-Cookie: a=1; Path=/\r\n"
        b"X-CaSe:v\r\n"
        b"Set-Cookie: b=2\r\n"
        b"X-Pad:   padded  \r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    server = await servers.start(answer(head))
    resp, body = await fetch(client, server.endpoint(), release=False)
    assert (resp.status, resp.reason, resp.content_length, body) == (201, "Created Here", 2, b"{}")
    assert list(resp.header_items()) == [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1; Path=/"),
        ("X-CaSe", "v"),
        ("Set-Cookie", "b=2"),
        ("X-Pad", "padded"),
        ("Content-Length", "2"),
    ]
    assert resp.header("x-case") == resp.header("X-CASE") == "v"
    assert resp.header("CONTENT-TYPE") == "application/json"
    assert resp.header("set-cookie") in {"a=1; Path=/", "b=2"}
    assert resp.header("x-missing") is None
    resp.release()


def big_head(shape: str, size: int) -> tuple[bytes, list[tuple[str, str]]]:
    """A response head of about ``size`` bytes, without its final CRLF; and its big headers.

    ``lines``: many 1 KiB header lines; ``value``: one header with one long value;
    ``reason``: one long reason phrase.
    """
    if shape == "lines":
        big = [(f"X-Big-{i:03d}", "v" * 1000) for i in range(size // 1024)]
    elif shape == "value":
        big = [("X-Big", "v" * size)]
    else:
        return b"HTTP/1.1 200 " + b"r" * size + b"\r\n", []
    lines = "".join(f"{name}: {value}\r\n" for name, value in big)
    return b"HTTP/1.1 200 OK\r\n" + lines.encode(), big


@pytest.mark.parametrize("shape", ["lines", "value", "reason"])
async def test_forty_kib_head_is_accepted(
    servers: Servers, client: PooledClient, shape: str
) -> None:
    head, big = big_head(shape, 40 * 1024)
    server = await servers.start(answer(head + b"Content-Length: 2\r\n\r\nok"))
    resp, body = await fetch(client, server.endpoint(), release=False)
    assert (resp.status, body) == (200, b"ok")
    for name, value in big:
        assert resp.header(name) == value
    resp.release()


@pytest.mark.parametrize("terminated", [True, False], ids=["terminated", "endless"])
@pytest.mark.parametrize("shape", ["lines", "value", "reason"])
async def test_head_over_64_kib_is_a_protocol_error(
    servers: Servers, client: PooledClient, shape: str, terminated: bool
) -> None:
    head, _ = big_head(shape, 70 * 1024)
    # An endless head never ends: the client must give up at the limit, not buffer on.
    end = b"Content-Length: 0\r\n\r\n" if terminated else b""
    server = await servers.start(answer_then_hold(head + end))
    error = await failing_fetch(client, server.endpoint())
    assert (error.kind, error.sent) == ("protocol", True)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n",
        b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=[
        "no-status",
        "four-digit-status",
        "non-digit-status",
        "not-http",
        "garbage",
        "duplicate-content-length",
        "nul-in-value",
        "negative-length",
        "signed-length",
        "underscore-length",
        "non-digit-length",
        "line-without-colon",
    ],
)
async def test_malformed_head_is_a_protocol_error(
    servers: Servers, client: PooledClient, head: bytes
) -> None:
    server = await servers.start(answer_then_hold(head))
    error = await failing_fetch(client, server.endpoint())
    assert (error.kind, error.sent) == ("protocol", True)
