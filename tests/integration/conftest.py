"""Planes as users run them: real processes started from the command line, on free ports."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from splitgate.redis_server import free_port


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
