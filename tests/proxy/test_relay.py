"""A stream relayed from the upstream connection's callback keeps every byte, in order.

The pipe (``proxy.relay.Pipe``) writes chunks to the client's socket while it has room and
hands them to the handler's task when it has not: these tests make the client stop reading
so that both ways are taken, and check the bytes and their framing exactly.
"""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
from aiohttp import web

from tests.conftest import StartApp, StartProxy, two_track_config

# Sizes around the pipe's small-chunk limit (2 KiB) and the socket's room (64 KiB).
SIZES = [
    1,
    7,
    2047,
    2048,
    2049,
    100,
    65_536,
    3,
    150_000,
    20,
    1,
    4096,
    9,
    8_000_000,
    5,
    3000,
    7,
    8_000_000,
    11,
    2,
]


def piece(i: int, size: int) -> bytes:
    """Distinct bytes per chunk, so that a reordering or a duplicate shows."""
    seed = hashlib.sha256(f"{i}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


EXPECTED = b"".join(piece(i, n) for i, n in enumerate(SIZES))


def streaming_upstream(*, length: bool, pause: float = 0.005) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if length:
            response.content_length = len(EXPECTED)
        await response.prepare(request)
        for i, size in enumerate(SIZES):
            await response.write(piece(i, size))
            await asyncio.sleep(pause)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/stream", handle)
    return app


async def exchange(base: str, version: str, read_after: float) -> tuple[bytes, bytes]:
    """Send one request; read nothing for ``read_after`` seconds, then all. (head, body)"""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
    try:
        writer.write(
            f"POST /v1/stream {version}\r\nHost: x\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\n{}".encode()
        )
        await writer.drain()
        await asyncio.sleep(read_after)
        async with asyncio.timeout(20):
            raw = await reader.read(-1)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def dechunk(body: bytes) -> bytes:
    """Decode a chunked body strictly: every size line, every CRLF, the last chunk."""
    out: list[bytes] = []
    rest = body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        assert sep, "a chunk size line without its CRLF"
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", "the body does not end with the last chunk"
            return b"".join(out)
        out.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n", "a chunk without its CRLF"
        rest = rest[size + 2 :]


async def proxy_for(app: web.Application, start_app: StartApp, start_proxy: StartProxy) -> str:
    url = await start_app(app)
    return await start_proxy(two_track_config(url, url, canary_weight=0))


async def test_chunked_stream_to_a_reader_that_stalls_keeps_every_byte_in_order(
    start_app: StartApp, start_proxy: StartProxy
) -> None:
    proxy = await proxy_for(streaming_upstream(length=False), start_app, start_proxy)
    for read_after in (0.0, 0.5):  # reading at once (the pipe), stalled (the task's backlog)
        head, body = await exchange(proxy, "HTTP/1.1", read_after)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower()
        assert dechunk(body) == EXPECTED


async def test_stream_to_an_http_1_0_client_is_the_raw_bytes_until_close(
    start_app: StartApp, start_proxy: StartProxy
) -> None:
    proxy = await proxy_for(streaming_upstream(length=False), start_app, start_proxy)
    for read_after in (0.0, 0.5):
        head, body = await exchange(proxy, "HTTP/1.0", read_after)
        assert head.startswith(b"HTTP/1.0 200"), head
        assert b"transfer-encoding" not in head.lower()
        assert body == EXPECTED


async def test_stream_with_a_length_is_relayed_unframed(
    start_app: StartApp, start_proxy: StartProxy
) -> None:
    proxy = await proxy_for(streaming_upstream(length=True), start_app, start_proxy)
    for read_after in (0.0, 0.5):
        head, body = await exchange(proxy, "HTTP/1.1", read_after)
        assert f"content-length: {len(EXPECTED)}".encode() in head.lower(), head
        assert body == EXPECTED


async def test_a_pooled_connection_does_not_keep_writing_to_an_earlier_client(
    start_app: StartApp, start_proxy: StartProxy
) -> None:
    """After a stream, its upstream connection goes back to the pool without the pipe: the
    next exchange on it writes only to its own client."""
    proxy = await proxy_for(streaming_upstream(length=False, pause=0), start_app, start_proxy)
    bodies = [await exchange(proxy, "HTTP/1.1", 0.0) for _ in range(3)]
    assert all(dechunk(body) == EXPECTED for _, body in bodies)


async def test_streams_one_after_another_on_one_client_connection_keep_their_framing(
    start_app: StartApp, start_proxy: StartProxy
) -> None:
    """Keep-alive after a piped body, with a length and chunked: the next answer on the same
    client connection starts where the last one ended."""
    for length in (True, False):
        proxy = await proxy_for(streaming_upstream(length=length), start_app, start_proxy)
        sockets = set()
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(3):
                async with session.post(f"{proxy}/v1/stream", data=b"{}") as r:
                    assert r.status == 200 and r.connection is not None
                    transport = r.connection.transport
                    assert transport is not None
                    sockets.add(transport.get_extra_info("sockname"))
                    assert await r.read() == EXPECTED
        assert len(sockets) == 1  # the same client connection each time
