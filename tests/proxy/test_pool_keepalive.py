"""The upstream's own idle limit: a connection is not used past what ``Keep-Alive`` announces."""

from __future__ import annotations

import pytest

from proxy.h1 import _timeout_of
from tests.proxy.scripted_upstream import Clients, Servers, answer, eventually, fetch, response


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"timeout=5", 5.0),
        (b"timeout=5, max=1000", 5.0),
        (b"max=100,  Timeout = 2.5", 2.5),
        (b"max=100", None),
        (b"timeout=soon", None),
        (b"timeout=-3", 0.0),
    ],
)
def test_the_announced_timeout_is_read(value: bytes, seconds: float | None) -> None:
    assert _timeout_of(value) == seconds


async def test_an_announced_second_is_too_short_to_pool(servers: Servers, clients: Clients) -> None:
    # The upstream closes after 1 s idle: a pooled connection could meet a request just then.
    server = await servers.start(answer(response(b"ok", headers=[("Keep-Alive", "timeout=1")])))
    client = clients()
    await fetch(client, server.endpoint())
    await eventually(lambda: server.conns[0].peer_closed, within=5)  # not kept
    _, body = await fetch(client, server.endpoint())
    assert body == b"ok" and server.accepted == 2


async def test_a_short_announced_timeout_ends_the_idle_time_early(
    servers: Servers, clients: Clients
) -> None:
    server = await servers.start(answer(response(b"ok", headers=[("Keep-Alive", "timeout=1.3")])))
    client = clients(keepalive=60)  # ours would keep it for a minute; the upstream's 0.3 s wins
    await fetch(client, server.endpoint())
    await eventually(lambda: server.conns[0].peer_closed, within=5)
    await fetch(client, server.endpoint())
    assert server.accepted == 2


async def test_a_long_announced_timeout_keeps_ours(servers: Servers, clients: Clients) -> None:
    server = await servers.start(answer(response(b"ok", headers=[("Keep-Alive", "timeout=60")])))
    client = clients()
    for _ in range(3):
        await fetch(client, server.endpoint())
    assert server.accepted == 1
