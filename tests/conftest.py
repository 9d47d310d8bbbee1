"""Shared fixtures: fake LLM upstreams and proxies on real sockets, on ephemeral ports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import pytest
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestServer
from blockbuster import BlockBuster, blockbuster_ctx

from config.schema import SplitgateConfig
from loadtests.fake_llm import Behaviour, FakeLLM
from proxy.app import Follow, ProxyApp
from proxy.server import address
from proxy.server import start as start_server
from splitgate.redis_server import RedisServer

Upstream = tuple[FakeLLM, str]
StartUpstream = Callable[..., Awaitable[Upstream]]
StartProxy = Callable[..., Awaitable[str]]
StartApp = Callable[[web.Application], Awaitable[str]]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """A blocking call made by splitgate's code inside the event loop fails the test.

    Only our packages are scanned: third-party clients used by tests (the OpenAI SDK reads
    its CA bundle on first use) are not ours to fix.
    """
    with blockbuster_ctx(["config", "proxy", "control", "splitgate", "loadtests"]) as bb:
        # redis-py reads its own package version (importlib.metadata) for each new connection.
        for name in (
            "os.stat",
            "io.BufferedReader.read",
            "io.TextIOWrapper.read",
            "os.listdir",
            "os.scandir",
        ):
            if name in bb.functions:
                bb.functions[name].can_block_in("redis/utils.py", "get_lib_version")
        yield bb


@pytest.fixture
async def start_app() -> AsyncIterator[StartApp]:
    """Serve any aiohttp application on a free loopback port; returns its base URL."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1")  # cancels handlers on disconnect
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def start_upstream(start_app: StartApp) -> StartUpstream:
    """Start a fake LLM backend with the given behaviour; returns it and its base URL."""

    async def start(version: str = "v1.0.0", **behaviour: Any) -> Upstream:
        fake = FakeLLM(version, f"fake-{version}", Behaviour(**behaviour))
        return fake, await start_app(fake.app())

    return start


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def two_track_config(
    stable: str, canary: str, canary_weight: float = 10, **proxy: Any
) -> SplitgateConfig:
    return SplitgateConfig.model_validate(
        {
            "proxy": proxy,
            "routes": [
                {
                    "name": "chat",
                    "match": {"path_prefix": "/"},
                    "stickiness": ["header:x-user-id", "client_ip"],
                    "tracks": [
                        {
                            "name": "stable",
                            "version": "v1.0.0",
                            "upstreams": [stable],
                            "weight": 100 - canary_weight,
                        },
                        {
                            "name": "canary",
                            "version": "v1.1.0",
                            "upstreams": [canary],
                            "weight": canary_weight,
                        },
                    ],
                }
            ],
        }
    )


@pytest.fixture
async def start_proxy() -> AsyncIterator[StartProxy]:
    """Start a proxy exactly as ``splitgate proxy`` does, on a free port; returns its URL."""
    started: list[tuple[ProxyApp, web.ServerRunner]] = []

    async def start(
        config: SplitgateConfig, *, secret: str | None = None, follow: Follow | None = None
    ) -> str:
        proxy = ProxyApp(config, internal_secret=secret, follow=follow)
        await proxy.start()
        runner = await start_server(proxy, "127.0.0.1", 0)
        started.append((proxy, runner))
        return f"http://{address(runner)}"

    yield start
    for proxy, runner in started:
        await runner.cleanup()
        await proxy.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private real redis-server on a free port, for this test alone."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests run on uvloop, the loop splitgate serves on (its transports differ).

    Tests that drive the planes as subprocesses (``run_plane``) keep asyncio's own loop: the
    planes run uvloop in their own processes, and uvloop will not close a loop while a
    killed supervisor's draining workers still hold the inherited stdout pipe.
    """
    if "run_plane" in getattr(item, "fixturenames", ()):
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}
