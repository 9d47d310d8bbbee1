"""The suite runs on the event loop splitgate serves on."""

from __future__ import annotations

import asyncio

import uvloop


async def test_tests_run_on_uvloop() -> None:
    # uvloop's transports are not asyncio.Transport subclasses: code that assumes they are
    # passes on the default loop and breaks in production (tests/conftest.py picks the loop).
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
