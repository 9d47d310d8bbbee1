"""The pooled upstream client's connections: reuse, expiry, limits, no retries, cancellation,
and back-pressure, against scripted raw TCP upstreams (``scripted_upstream``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from proxy.client import UpstreamError
from proxy.endpoints import Endpoint
from proxy.pool import PooledClient
from tests.conftest import refused_url
from tests.proxy.scripted_upstream import (
    WAIT,
    Clients,
    Conn,
    Servers,
    answer,
    answer_once_then_close,
    answer_then_hold,
    eventually,
    failing_fetch,
    fetch,
    per_connection,
    read_all,
    response,
)


async def cancel(*tasks: asyncio.Task[object]) -> None:
    """Cancel what a failed test left running, so that nothing outlives the test."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def hang(conn: Conn) -> None:
    """Read the request, never answer, and wait for the client to close."""
    await conn.request()
    await conn.until_peer_closes()


async def test_sequential_requests_share_one_connection(servers: Servers, clients: Clients) -> None:
    server = await servers.start(answer(lambda req: response(req.target.encode())))
    client = clients()
    for i in range(3):
        _, body = await fetch(client, server.endpoint(), "GET", f"/{i}")
        assert body == b"/%d" % i
    assert server.accepted == 1
    assert len(server.conns[0].requests) == 3


async def test_concurrent_requests_use_separate_connections(
    servers: Servers, clients: Clients
) -> None:
    both = asyncio.Event()

    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            if len(server.requests) == 2:
                both.set()
            await both.wait()  # neither is answered before both arrived
            await conn.write(response(b"ok"))

    server = await servers.start(handler)
    client = clients()
    results = await asyncio.gather(*(fetch(client, server.endpoint()) for _ in range(2)))
    assert [body for _, body in results] == [b"ok", b"ok"]
    assert server.accepted == 2


async def test_close_closes_pooled_connections(servers: Servers, clients: Clients) -> None:
    server = await servers.start(answer(response(b"ok")))
    client = clients()
    await fetch(client, server.endpoint())
    assert not server.conns[0].peer_closed
    await client.close()
    await eventually(lambda: server.conns[0].peer_closed)


async def test_a_response_released_after_close_closes_its_connection(
    servers: Servers, clients: Clients
) -> None:
    server = await servers.start(answer(response(b"ok")))
    client = clients()
    async with asyncio.timeout(WAIT):
        resp = await client.send(server.endpoint(), "GET", "/", [], None)
        await client.close()
        assert await read_all(resp) == b"ok"
    resp.release()
    await eventually(lambda: server.conns[0].peer_closed)


async def abandon(client: PooledClient, endpoint: Endpoint) -> None:
    async with asyncio.timeout(WAIT):
        resp = await client.send(endpoint, "GET", "/", [], None)
        assert await resp.read()
    resp.close()


async def fail(client: PooledClient, endpoint: Endpoint) -> None:
    await failing_fetch(client, endpoint)


async def complete(client: PooledClient, endpoint: Endpoint) -> None:
    _, body = await fetch(client, endpoint)
    assert body == b"ok"


# How the first connection's exchange ends: (its upstream, what the client does with it).
# The upstreams that keep their connection open would answer again on it if asked.
ENDINGS: dict[str, tuple[Callable[[Conn], Awaitable[None]], Callable[..., Awaitable[None]]]] = {
    "body-cut": (
        answer_once_then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd"),
        fail,
    ),
    "closed-mid-body": (
        answer_then_hold(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789"),
        abandon,
    ),
    "connection-close": (answer(response(b"ok", headers=[("Connection", "close")])), complete),
    "http/1.0": (answer(response(b"ok", version="HTTP/1.0")), complete),
    "protocol-error": (
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"),
        fail,
    ),
    "bad-chunk": (
        answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"),
        fail,
    ),
}


@pytest.mark.parametrize("limit", [0, 1], ids=["unlimited", "limit-1"])
@pytest.mark.parametrize("ending", ENDINGS)
async def test_next_request_uses_a_new_connection_after(
    servers: Servers, clients: Clients, ending: str, limit: int
) -> None:
    first, exchange = ENDINGS[ending]
    server = await servers.start(per_connection(first, answer(response(b"next"))))
    client = clients(limit_per_host=limit)  # with a limit, the broken exchange frees its slot
    await exchange(client, server.endpoint())
    _, body = await fetch(client, server.endpoint())
    assert body == b"next"
    assert server.accepted == 2
    assert len(server.conns[0].requests) == 1
    if ending == "closed-mid-body":
        await eventually(lambda: server.conns[0].peer_closed)


async def test_idle_connection_closed_by_the_upstream_is_replaced(
    servers: Servers, clients: Clients
) -> None:
    keep_alive = [("Connection", "keep-alive"), ("Keep-Alive", "timeout=60")]
    server = await servers.start(
        per_connection(
            answer_once_then_close(response(b"one", headers=keep_alive)),
            answer(response(b"two")),
        )
    )
    client = clients()
    await fetch(client, server.endpoint())
    await eventually(lambda: server.conns[0].closed)
    await asyncio.sleep(0.1)  # the FIN reaches the client's loop
    _, body = await fetch(client, server.endpoint())
    assert body == b"two"
    assert server.accepted == 2


async def test_a_connection_the_upstream_spoke_on_unasked_is_not_reused(
    servers: Servers, clients: Clients
) -> None:
    spoke = asyncio.Event()

    async def out_of_step(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.write(response(b"one"))
            await asyncio.sleep(0.05)
            await conn.write(response(b"stale"))  # an answer to no request
            spoke.set()

    server = await servers.start(per_connection(out_of_step, answer(response(b"two"))))
    client = clients()
    _, body = await fetch(client, server.endpoint())
    assert body == b"one"
    async with asyncio.timeout(WAIT):
        await spoke.wait()
    await asyncio.sleep(0.1)  # the stale answer reaches the client's loop
    _, body = await fetch(client, server.endpoint())
    assert body == b"two"
    assert server.accepted == 2


async def test_two_answers_to_one_request_end_the_connection(
    servers: Servers, clients: Clients
) -> None:
    server = await servers.start(
        per_connection(
            answer(response(b"one") + response(b"stale")),  # in one segment
            answer(response(b"two")),
        )
    )
    client = clients()
    _, body = await fetch(client, server.endpoint())
    assert body == b"one"
    _, body = await fetch(client, server.endpoint())
    assert body == b"two"
    assert server.accepted == 2


async def test_idle_connections_expire_after_keepalive(servers: Servers, clients: Clients) -> None:
    server = await servers.start(answer(response(b"ok")))
    client = clients(keepalive=0.2)
    await fetch(client, server.endpoint())
    await eventually(lambda: server.conns[0].peer_closed, within=5)
    await fetch(client, server.endpoint())
    assert server.accepted == 2


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
async def test_a_request_left_unanswered_is_never_retried(
    servers: Servers, clients: Clients, method: str, reused: bool
) -> None:
    async def handler(conn: Conn) -> None:
        if reused:
            await conn.request()
            await conn.write(response(b"ok"))
        await conn.request()  # then close without a byte of answer

    server = await servers.start(handler)
    client = clients()
    if reused:
        await fetch(client, server.endpoint())
    body = b"{}" if method == "POST" else None
    error = await failing_fetch(client, server.endpoint(), method, body)
    assert (error.kind, error.sent) == ("disconnected", True)
    await asyncio.sleep(0.1)  # room for a wrong retry to arrive
    assert server.accepted == 1
    assert len(server.requests) == (2 if reused else 1)


async def test_connection_refused_is_connect_and_not_sent(clients: Clients) -> None:
    client = clients()
    with pytest.raises(UpstreamError) as info:
        async with asyncio.timeout(WAIT):
            await client.send(Endpoint(refused_url()), "POST", "/", [], b"{}")
    assert (info.value.kind, info.value.sent) == ("connect", False)


async def test_connect_failures_free_their_slot(clients: Clients) -> None:
    client = clients(limit_per_host=1)
    endpoint = Endpoint(refused_url())

    async def refused() -> str:
        try:
            await client.send(endpoint, "GET", "/", [], None)
        except UpstreamError as exc:
            return exc.kind
        raise AssertionError("connected to a released port")

    async with asyncio.timeout(WAIT):
        kinds = await asyncio.gather(*(refused() for _ in range(3)))
    assert kinds == ["connect"] * 3


@pytest.mark.parametrize("limit", [0, 1], ids=["unlimited", "limit-1"])
async def test_cancelled_send_closes_its_connection(
    servers: Servers, clients: Clients, limit: int
) -> None:
    server = await servers.start(per_connection(hang, answer(response(b"ok"))))
    client = clients(limit_per_host=limit)
    task = asyncio.create_task(client.send(server.endpoint(), "GET", "/", [], None))
    await eventually(lambda: len(server.requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: server.conns[0].peer_closed)
    _, body = await fetch(client, server.endpoint())
    assert body == b"ok"
    assert server.accepted == 2


async def test_limit_per_host_holds_further_sends(servers: Servers, clients: Clients) -> None:
    go = asyncio.Event()

    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            await go.wait()
            await conn.write(response(req.target.encode()))

    server = await servers.start(handler)
    client = clients(limit_per_host=1)
    tasks = [asyncio.create_task(fetch(client, server.endpoint(), "GET", f"/{i}")) for i in (1, 2)]
    try:
        await eventually(lambda: len(server.requests) == 1)
        await asyncio.sleep(0.2)  # room for a wrong second connection to arrive
        assert server.accepted == 1
        go.set()
        results = await asyncio.gather(*tasks)
    finally:
        await cancel(*tasks)
    assert [body for _, body in results] == [b"/1", b"/2"]
    assert server.max_open == 1
    assert len(server.requests) == 2


async def test_limit_per_host_is_per_endpoint(servers: Servers, clients: Clients) -> None:
    arrived: list[str] = []
    both = asyncio.Event()

    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            arrived.append(req.target)
            if len(arrived) == 2:
                both.set()
            await both.wait()
            await conn.write(response(b"ok"))

    first = await servers.start(handler)
    second = await servers.start(handler)
    client = clients(limit_per_host=1)
    await asyncio.gather(
        fetch(client, first.endpoint(), "GET", "/a"), fetch(client, second.endpoint(), "GET", "/b")
    )
    assert sorted(arrived) == ["/a", "/b"]
