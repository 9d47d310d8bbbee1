"""Fixtures of the upstream client's tests: scripted upstreams and clients closed after; and
of the forwarder's end-to-end tests: an HTTP client session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from proxy.pool import PooledClient
from tests.proxy.scripted_upstream import Clients, Servers


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    servers = Servers()
    yield servers
    await servers.close()


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    clients = Clients()
    yield clients
    await clients.close()


@pytest.fixture
def client(clients: Clients) -> PooledClient:
    return clients()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session of the forwarder's tests (``test_forward*.py``)."""
    async with aiohttp.ClientSession() as s:
        yield s
