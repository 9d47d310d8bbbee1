"""The watchdog: one timer per request, moved by a float store, firing at the last deadline."""

from __future__ import annotations

import asyncio

from proxy.watchdog import Watchdog


async def _sleeper() -> None:
    await asyncio.sleep(30)


async def test_a_deadline_moved_later_does_not_fire_at_the_first() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(_sleeper())
    dog = Watchdog(loop, task, loop.time() + 0.05, "first_byte")
    dog.set(loop.time() + 30, "idle")
    await asyncio.sleep(0.3)  # the first timer has come and gone
    assert not dog.fired and not task.done()
    dog.stop()
    task.cancel()


async def test_a_deadline_moved_before_the_armed_time_fires_there() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(_sleeper())
    dog = Watchdog(loop, task, loop.time() + 30, "client_body")
    dog.set(loop.time() + 60, "first_byte")  # later: no new timer
    dog.set(loop.time() + 0.01, "idle")  # before the armed 30 s: re-armed
    async with asyncio.timeout(5):
        await asyncio.wait({task})
    assert dog.fired and dog.phase == "idle" and task.cancelled()


async def test_a_stopped_watchdog_never_fires() -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(_sleeper())
    dog = Watchdog(loop, task, loop.time() + 0.01, "idle")
    dog.stop()
    await asyncio.sleep(0.1)
    assert not dog.fired and not task.done()
    task.cancel()
