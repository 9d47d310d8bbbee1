"""Planes as users run them: real processes started from the command line, on free ports;
users' traffic for the rollout tests and a recording upstream for the edge-safety tests."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from splitgate.redis_server import free_port
from tests.conftest import StartApp
from tests.integration.raw_http import Recorder, Reply, StartRecorder


async def run_cli(
    *args: str, admin_url: str, token: str, within_s: float = 60
) -> tuple[int, str, str]:
    """``splitgate ARGS`` as a user runs it, against the admin API: (exit code, out, err)."""
    env = {**os.environ, "SPLITGATE_ADMIN_URL": admin_url, "SPLITGATE_ADMIN_TOKEN": token}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "splitgate",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), within_s)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class PlaneProcess:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(20), aiohttp.ClientSession() as session:
        while process.returncode is None:
            try:
                async with session.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"process exited with {process.returncode}")


RunPlane = Callable[..., Awaitable[PlaneProcess]]


@pytest.fixture
async def run_plane() -> AsyncIterator[RunPlane]:
    """``await run_plane("proxy", "--config", path, env={...})``: start and wait until ready."""
    started: list[asyncio.subprocess.Process] = []

    async def run(plane: str, *args: str, env: dict[str, str] | None = None) -> PlaneProcess:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            plane,
            *args,
            "--listen",
            f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SPLITGATE_LOG_LEVEL": "info", **(env or {})},
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        await wait_ready(f"{url}/{'readyz' if plane == 'proxy' else 'healthz'}", process)
        return PlaneProcess(process, url)

    yield run
    for process in started:
        if process.returncode is None:
            process.kill()
        await process.wait()


RunProxy = Callable[..., Awaitable[PlaneProcess]]


@pytest.fixture
def run_proxy(run_plane: RunPlane) -> RunProxy:
    async def run(*args: str, env: dict[str, str] | None = None) -> PlaneProcess:
        return await run_plane("proxy", *args, env=env)

    return run


INTERNAL = "internal-testers-secret"
"""The proxies' ``SPLITGATE_INTERNAL_SECRET`` in the rollout tests: testers' requests send it."""


@pytest.fixture
async def traffic() -> AsyncIterator[Any]:
    """``await traffic(proxy)``: users' requests through the proxy until the test ends (the
    rollout tests' load)."""
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()

    async def begin(proxy: PlaneProcess, internal_to: str | None = None) -> None:
        """Four users' workers; with ``internal_to``, a fifth sends testers' requests that ask
        for that track with the trusted override."""

        async def worker(seed: int, headers: dict[str, str] | None = None) -> None:
            rng = random.Random(seed)
            async with aiohttp.ClientSession() as session:
                for _ in range(50_000):
                    if stop.is_set():
                        return
                    sent = headers or {"x-user-id": f"u{rng.randrange(100_000)}"}
                    async with session.get(f"{proxy.url}/v1/models", headers=sent) as r:
                        await r.read()

        tasks.extend(asyncio.create_task(worker(i)) for i in range(4))
        if internal_to is not None:
            tester = {"x-splitgate-track": internal_to, "x-splitgate-internal": INTERNAL}
            tasks.append(asyncio.create_task(worker(99, tester)))

    yield begin
    stop.set()
    for task in tasks:
        await task


@pytest.fixture
def start_recorder(start_app: StartApp) -> StartRecorder:
    """``await start_recorder(reply)``: a recording upstream (``raw_http.Recorder``) and its URL."""

    async def start(reply: Reply | None = None) -> tuple[Recorder, str]:
        recorder = Recorder(reply)
        return recorder, await start_app(recorder.app())

    return start
