"""``splitgate demo --load`` as a newcomer runs it: a good canary promoted, a bad one rolled back.

A real demo process (its own redis-server, control plane, proxy, three fake backends and its
load) on free loopback ports; the rollouts are started with the commands the demo prints, and
approved through the admin API. Every wait has a deadline; only the processes started here
are signalled, by PID.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from splitgate.redis_server import free_port

TOKEN = "demo-test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Demo:
    def __init__(self, process: asyncio.subprocess.Process, admin: str) -> None:
        self.process = process
        self.admin = admin
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def until(self, pattern: str, within: float) -> re.Match[str]:
        """The first line matching ``pattern``, waiting up to ``within`` seconds for it."""
        async with asyncio.timeout(within):
            while True:
                for line in self.lines:
                    if found := re.search(pattern, line):
                        return found
                if self.process.returncode is not None:
                    raise AssertionError(f"the demo exited: {self.output()}")
                await asyncio.sleep(0.1)

    def output(self) -> str:
        return "\n".join(self.lines[-80:])

    def command(self, plan: str) -> list[str]:
        """The rollout command the demo printed for ``plan``, split as a shell would."""
        line = next(x for x in self.lines if "rollout start" in x and plan in x)
        return shlex.split(line.strip())

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._reader
        return code


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    proxy, admin, *backends = (free_port() for _ in range(5))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "splitgate",
        "demo",
        "--load",
        "40",
        "--listen",
        f"127.0.0.1:{proxy}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--backend-ports",
        ",".join(map(str, backends)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SPLITGATE_ADMIN_TOKEN": TOKEN},
    )
    running = Demo(process, f"http://127.0.0.1:{admin}")
    try:
        await running.until("Ctrl-C stops it", within=30)
        await running.until(rf"dashboard +{running.admin}/ui/ ", within=1)
        yield running
    finally:
        await running.stop()


async def rollout_cli(demo: Demo, plan: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "SPLITGATE_ADMIN_URL": demo.admin, "SPLITGATE_ADMIN_TOKEN": TOKEN}
    command = demo.command(plan)
    return await asyncio.create_subprocess_exec(
        *command, "--timeout", "300", stdout=asyncio.subprocess.PIPE, env=env
    )


async def rollouts(session: aiohttp.ClientSession, admin: str) -> list[dict[str, Any]]:
    async with session.get(f"{admin}/v1/rollouts", headers=AUTH) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return list(body["rollouts"])


async def approve_when_asked(demo: Demo, cli: asyncio.subprocess.Process) -> str:
    """Approve the rollout once it waits for an approval; its id."""
    async with aiohttp.ClientSession() as session:
        while cli.returncode is None:
            for record in await rollouts(session, demo.admin):
                if record["state"]["status"] == "awaiting_approval":
                    url = f"{demo.admin}/v1/rollouts/{record['id']}/approve"
                    async with session.post(url, headers=AUTH) as r:
                        assert r.status == 200, await r.text()
                    return str(record["id"])
            await asyncio.sleep(0.5)
    raise AssertionError(f"the rollout ended before it asked for an approval:\n{demo.output()}")


async def status(demo: Demo, rollout_id: str) -> str:
    async with aiohttp.ClientSession() as session:
        for record in await rollouts(session, demo.admin):
            if record["id"] == rollout_id:
                return str(record["state"]["status"])
    raise AssertionError(f"no rollout {rollout_id}")


@pytest.mark.timeout(600)
async def test_a_good_canary_is_promoted_and_a_bad_one_rolled_back(demo: Demo) -> None:
    await demo.until(r"  load     [\d.]+ req/s", within=60)  # the load reaches the proxy

    started = time.monotonic()
    good = await rollout_cli(demo, "demo-canary.yaml")
    async with asyncio.timeout(300):
        good_id = await approve_when_asked(demo, good)
        asked = time.monotonic()
        out, _ = await good.communicate()
    promoted = time.monotonic()
    assert good.returncode == 0, out.decode() + demo.output()
    assert await status(demo, good_id) == "promoted"

    bad = await rollout_cli(demo, "demo-bad-canary.yaml")
    async with asyncio.timeout(180):
        out, _ = await bad.communicate()
    # The figures, for whoever tunes the plans (shown with -s); no assertion on them.
    print(
        f"good canary: approval asked after {asked - started:.0f} s, promoted after "
        f"{promoted - started:.0f} s; bad canary ended after {time.monotonic() - promoted:.0f} s"
    )
    assert bad.returncode == 1, out.decode() + demo.output()
    bad_id = out.decode().split(":")[0].strip()
    assert await status(demo, bad_id) == "rolled_back"

    # The feed printed every step as it happened, one line each.
    await demo.until(rf"rollout  {bad_id}  rolled_back  ", within=15)
    await demo.until(r"weights  chat  stable=100 canary=0  \(gen \d+", within=15)
    feed = "\n".join(demo.lines)
    for expected in (
        rf"\d\d:\d\d:\d\d  rollout  {good_id}  phase  Phase 1: 20%",
        r"\d\d:\d\d:\d\d  weights  chat  stable=80 canary=20  \(gen \d+, by splitgate-rollout",
        rf"rollout  {good_id}  phase  Phase 2: 50%",
        r"weights  chat  stable=50 canary=50  ",
        rf"rollout  {good_id}  waiting  ",
        rf"rollout  {good_id}  approved  ",
        r"weights  chat  stable=0 canary=100  ",
        rf"rollout  {good_id}  promoted  ",
        rf"rollout  {good_id}  baseline_updated  promoted: stable now serves v1\.1\.0",
        r"weights  chat  stable=100 canary=0  ",
        r"track    chat/canary  v1\.2\.0 at http://127\.0\.0\.1:\d+ weight 0  ",
        rf"rollout  {bad_id}  phase  Phase 1: 20%",
        r"weights  chat  stable=80 canary=20  ",
    ):
        assert re.search(expected, feed), f"{expected!r} not in the feed:\n{feed}"
    assert await demo.stop() == 0
