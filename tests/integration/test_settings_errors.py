"""A bad setting, as a user meets it: a real process that stops with exit status 2 and one line
on stderr naming the flag or variable, never a traceback."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest


async def start(plane: str, *args: str, **settings: str) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLITGATE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        plane,
        *args,
        env={**env, **settings},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, err.decode().splitlines()


@pytest.mark.parametrize(
    ("plane", "args", "settings", "line"),
    [
        (
            "proxy",
            ["--upstream", "a=http://127.0.0.1:1", "--workers", "0"],
            {},
            "splitgate proxy: --workers: '0': must be between 1 and 64",
        ),
        (
            "proxy",
            ["--upstream", "a=http://127.0.0.1:1"],
            {"SPLITGATE_REDIS_PUBSUB": "maybe"},
            "splitgate proxy: SPLITGATE_REDIS_PUBSUB: 'maybe': expected on or off",
        ),
        (
            "control",
            ["--config", "config/examples/routes.yaml", "--redis-url", "redis://127.0.0.1:1/0"],
            {"SPLITGATE_ADMIN_TOKEN": "t" * 20, "SPLITGATE_LEASE": "abc"},
            "splitgate control: SPLITGATE_LEASE: cannot read 'abc' as a duration",
        ),
    ],
)
async def test_a_bad_setting_stops_the_process_with_one_line(
    plane: str, args: list[str], settings: dict[str, str], line: str
) -> None:
    code, lines = await start(plane, *args, **settings)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(line), lines
