"""The pooled upstream client's flow control: a slow reader holds back the upstream, a slow
upstream holds back the request body, and an early answer ends the upload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.proxy.scripted_upstream import (
    Clients,
    Conn,
    Servers,
    answer,
    eventually,
    fetch,
    per_connection,
    response,
)

MiB = 1 << 20


async def cancel(*tasks: asyncio.Task[object]) -> None:
    """Cancel what a failed test left running, so that nothing outlives the test."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


PIECE = b"x" * 65536
TOTAL = 64 * MiB


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_slow_reader_holds_back_the_upstream(
    servers: Servers, clients: Clients, chunked: bool
) -> None:
    written = 0

    async def handler(conn: Conn) -> None:
        nonlocal written
        await conn.request()
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {TOTAL}"
        await conn.write(f"HTTP/1.1 200 OK\r\n{framing}\r\n\r\n".encode())
        piece = b"10000\r\n" + PIECE + b"\r\n" if chunked else PIECE
        for _ in range(TOTAL // len(PIECE)):
            await conn.write(piece)
            written += len(PIECE)
        if chunked:
            await conn.write(b"0\r\n\r\n")
        await conn.until_peer_closes()

    server = await servers.start(handler)
    client = clients()
    async with asyncio.timeout(90):
        resp = await client.send(server.endpoint(), "GET", "/", [], None)
        await asyncio.sleep(0.8)  # the reader reads nothing for a while
        assert written < 24 * MiB  # kernel buffers hold a few MiB, the client must not
        received = 0
        while chunk := await resp.read():
            received += len(chunk)
    resp.release()
    assert received == TOTAL


async def test_a_slow_upstream_holds_back_the_request_body(
    servers: Servers, clients: Clients
) -> None:
    produced = 0
    go = asyncio.Event()

    async def stream() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(TOTAL // len(PIECE)):
            produced += len(PIECE)
            yield PIECE

    async def handler(conn: Conn) -> None:
        req = await conn.request(body=False)
        assert req is not None
        await go.wait()
        req.body = await conn.read_body(req)
        await conn.write(response(b"%d" % len(req.body)))
        await conn.until_peer_closes()

    server = await servers.start(handler)
    client = clients()
    async with asyncio.timeout(90):
        sending = asyncio.create_task(fetch(client, server.endpoint(), "POST", "/", [], stream()))
        try:
            await eventually(lambda: len(server.requests) == 1)
            await asyncio.sleep(0.8)  # the upstream reads nothing of the body for a while
            assert produced < 24 * MiB
            go.set()
            _, body = await sending
        finally:
            await cancel(sending)
    assert body == b"%d" % TOTAL


@pytest.mark.parametrize("reads", [True, False], ids=["upstream-drains", "upstream-stops-reading"])
async def test_an_early_answer_is_returned_while_the_body_is_still_going(
    servers: Servers, clients: Clients, reads: bool
) -> None:
    produced = 0
    stuck = asyncio.Event()

    async def refuse_early(conn: Conn) -> None:
        req = await conn.request(body=False)
        assert req is not None
        if reads:
            await conn.write(response(b"denied", status="401 Unauthorized"))
            await conn.until_peer_closes()  # reads (and drops) whatever body comes
        else:
            # Reads nothing more, ever; answers once the client's upload is stuck.
            await stuck.wait()
            await conn.write(response(b"denied", status="401 Unauthorized"))
            await asyncio.Event().wait()

    async def stream() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(TOTAL // len(PIECE)):
            produced += len(PIECE)
            yield PIECE
            await asyncio.sleep(0)

    async def watch() -> None:
        """Set ``stuck`` once the body has not moved for 10 polls in a row."""
        last, still = -1, 0
        while still < 10:
            await asyncio.sleep(0.02)
            still, last = (still + 1 if produced == last else 0), produced
        stuck.set()

    server = await servers.start(per_connection(refuse_early, answer(response(b"ok"))))
    client = clients()
    watching = asyncio.create_task(watch())
    try:
        resp, body = await fetch(client, server.endpoint(), "POST", "/", [], stream())
    finally:
        await cancel(watching)
    assert (resp.status, body) == (401, b"denied")
    _, body = await fetch(client, server.endpoint())
    assert body == b"ok"
    if not reads:
        assert produced < TOTAL
        assert server.accepted == 2  # the upload was cut short: that connection is done


async def test_a_piped_body_keeps_its_order_when_the_sink_refuses(
    servers: Servers, clients: Clients
) -> None:
    """Chunks go to the sink as they arrive; one it refuses, and every one behind it while
    one waits, goes to ``read``; once ``read`` caught up the sink gets chunks again."""
    go = [asyncio.Event() for _ in range(6)]

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i, event in enumerate(go):
            await event.wait()
            await conn.write(b"1\r\n" + str(i).encode() + b"\r\n")
        await conn.write(b"0\r\n\r\n")
        await conn.until_peer_closes()

    server = await servers.start(handler)
    client = clients()
    taken: list[bytes] = []
    refuse = {b"1"}

    def sink(chunk: bytes) -> bool:
        if chunk in refuse:
            return False
        taken.append(chunk)
        return True

    async with asyncio.timeout(10):
        resp = await client.send(server.endpoint(), "GET", "/", [], None)
        resp.pipe(sink)
        go[0].set()
        await eventually(lambda: taken == [b"0"])
        go[1].set()  # refused: waits for read
        await asyncio.sleep(0.05)
        go[2].set()  # the sink would take it, but "1" waits: it queues behind
        await asyncio.sleep(0.05)
        assert taken == [b"0"]
        assert await resp.read() == b"12"
        go[3].set()  # read caught up: the sink again
        await eventually(lambda: taken == [b"0", b"3"])
        resp.pipe(None)  # stopped: all goes to read
        go[4].set()
        go[5].set()
        rest = b""
        while chunk := await resp.read():
            rest += chunk
    resp.release()
    assert rest == b"45" and taken == [b"0", b"3"]
