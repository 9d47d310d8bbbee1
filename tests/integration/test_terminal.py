"""``splitgate rollout status --watch`` and ``splitgate top`` as people and CI jobs run them:
in a real pseudo-terminal (redrawn in place), into a pipe (plain lines), into a pipe its reader
closed early (``| head``), and interrupted with Ctrl-C; against a real control plane, proxy and
redis-server."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import struct
import sys
import termios
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import RunPlane
from tests.integration.rollout_stack import AUTH, TOKEN, Stack, stack

ROWS, COLUMNS = 50, 200
REDRAW = "\x1b[J"  # ends every frame drawn in place
UP = re.compile(r"\r\x1b\[\d+A")  # back up over the previous frame


def long_plan(canary_url: str) -> str:
    """A canary that stays in its first phase: too little traffic to pass it, and ten minutes
    before that makes it pause (on_inconclusive)."""
    return f"""canary_deployment:
  route: chat
  baseline: stable
  candidate: {{track: canary, version: v1.1.0, upstreams: ["{canary_url}"]}}
  phases:
    - {{name: "5%", traffic: 5, duration: 1s, max_duration: 10m}}
    - {{name: "25%", traffic: 25, duration: 10m}}
    - {{name: "100%", traffic: 100}}
  canary_metrics:
    primary: [{{name: error_rate, threshold: "< 5%", window: 30s}}]
    secondary: []
"""


@dataclass
class Terminal:
    """A command whose stdin and stdout are a pseudo-terminal; stderr is a pipe."""

    process: asyncio.subprocess.Process
    master: int
    screen: str = ""

    def read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: the command exited and closed its side
                return
            if not chunk:
                return
            self.screen += chunk.decode(errors="replace")

    async def until(self, ready: Callable[[str], bool], within: float = 30) -> None:
        async with asyncio.timeout(within):
            while not ready(self.screen):
                self.read()
                await asyncio.sleep(0.05)

    async def interrupt(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        assert self.process.stderr is not None
        err = await asyncio.wait_for(self.process.stderr.read(), 15)
        code = await asyncio.wait_for(self.process.wait(), 15)
        self.read()
        return code, err.decode()


def cli_env(s: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**env, "SPLITGATE_ADMIN_URL": s.control.url, "SPLITGATE_ADMIN_TOKEN": TOKEN, **extra}


@pytest.fixture
async def terminal() -> AsyncIterator[Callable[..., Any]]:
    """``await terminal(s, "rollout", "status", ID, "--watch")``: run it in a pseudo-terminal."""
    started: list[Terminal] = []

    async def run(s: Stack, *args: str) -> Terminal:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        os.set_blocking(master, False)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "splitgate",
            *args,
            stdin=slave,
            stdout=slave,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(s, TERM="xterm"),
        )
        os.close(slave)
        started.append(Terminal(process, master))
        return started[-1]

    yield run
    for t in started:
        if t.process.returncode is None:
            t.process.kill()
            await t.process.wait()
        os.close(t.master)


async def into_closed_pipe(s: Stack, *args: str) -> tuple[int, str]:
    """Run a command whose stdout's reader has gone (``… | head -0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "splitgate",
        *args,
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(s),
    )
    os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def api(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, headers=AUTH, **kw) as r:
        assert r.status < 300, await r.text()
        return await r.json()


async def looked_at(session: aiohttp.ClientSession, s: Stack, rollout_id: str) -> None:
    """Wait until the runner has recorded a look (so ``verdicts`` has lines to print)."""
    url = f"{s.control.url}/v1/rollouts/{rollout_id}/verdicts"
    async with asyncio.timeout(30):
        while True:
            if (await api(session, "GET", url))["looks"]:
                return
            await asyncio.sleep(0.2)


def frames(screen: str) -> int:
    return screen.count(REDRAW)


async def test_watching_a_rollout(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    terminal: Callable[..., Any],
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server)
    async with aiohttp.ClientSession() as session:
        rollout_id = (
            await api(session, "POST", f"{s.control.url}/v1/rollouts", data=long_plan(s.canary_url))
        )["id"]
        await looked_at(session, s, rollout_id)

        # In a terminal: the status is redrawn in place, phases marked, until Ctrl-C.
        t = await terminal(s, "rollout", "status", rollout_id, "--watch")
        await t.until(lambda screen: frames(screen) >= 2)
        code, err = await t.interrupt()
        assert code == 130 and "Traceback" not in err and "cannot reach" not in err, err
        assert t.screen.startswith("\x1b[?25l") and t.screen.endswith("\x1b[?25h")
        second = t.screen.split(REDRAW)[1]
        assert UP.match(second)  # back up over the first frame
        for expected in (rollout_id, "RUNNING", "current", "1. 5%", "2. 25%", "3. 100%"):
            assert expected in second, second
        assert "rollback checks" in second or "success criteria" in second

        # Into a pipe whose reader went away: quiet, whatever it was printing.
        for args in (("rollout", "verdicts", rollout_id), ("rollout", "status", rollout_id)):
            code, err = await into_closed_pipe(s, *args)
            assert code in (0, 141) and err == "", (args, code, err)

        # Into a log: plain lines, one per change, and the exit status of the end.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "splitgate",
            "rollout",
            "status",
            rollout_id,
            "--watch",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(s, TERM="xterm"),
        )
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 30)
        assert first.decode().startswith(f"{rollout_id}: running · phase 1 of 3: 5%")
        await api(session, "POST", f"{s.control.url}/v1/rollouts/{rollout_id}/abort")
        out, err = await asyncio.wait_for(process.communicate(), 30)
    text = first.decode() + out.decode()
    assert process.returncode == 1, (text, err)
    assert "\x1b" not in text and "ABORTED" in text and "aborted: by request" in text


async def test_top(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    terminal: Callable[..., Any],
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server)
    async with aiohttp.ClientSession() as session:
        body = {"version": "v1.1.0", "upstreams": [s.canary_url], "weight": 0}
        await api(session, "PUT", f"{s.control.url}/v1/routes/chat/tracks/canary", json=body)
        for user in range(50):
            async with session.get(
                f"{s.proxy.url}/v1/models", headers={"x-user-id": f"u{user}"}
            ) as r:
                assert r.status == 200

    # In a terminal: the table is redrawn in place until Ctrl-C, once the traffic is counted.
    t = await terminal(s, "top", "chat", "--interval", "0.5")

    def counted(screen: str) -> bool:
        frame = screen.split(REDRAW)[-2] if frames(screen) >= 2 else ""
        rows = [line.split() for line in frame.splitlines() if "stable" in line]
        return bool(rows) and rows[-1][5] not in ("0.0", "-")  # REQ/S of stable

    await t.until(counted)
    code, err = await t.interrupt()
    assert code == 130 and "Traceback" not in err, err
    last = t.screen.split(REDRAW)[-2]
    assert UP.match(last)
    for expected in ("ROUTE", "REQ/S", "ERRORS", "TTFB P95", "TOK/REQ", "canary", "v1.1.0"):
        assert expected in last, last

    # Into a log: one plain table.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "splitgate",
        "top",
        "--once",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(s, TERM="xterm"),
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    lines = out.decode().splitlines()
    assert "\x1b" not in out.decode() and lines[1].split()[:3] == ["ROUTE", "TRACK", "VERSION"]
    assert {line.split()[1] for line in lines[2:]} == {"stable", "canary"}

    # Into a pipe whose reader went away.
    code, err = await into_closed_pipe(s, "top", "--once")
    assert code in (0, 141) and err == "", (code, err)
