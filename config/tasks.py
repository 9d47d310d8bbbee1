"""Stopping a background task, the same way in both planes.

Plain asyncio, nothing of either plane: the proxy's Redis follower and the control plane's
loops both stop their tasks with it.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("splitgate")


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it to end. The cancellation is repeated: on
    Python 3.11 a cancellation that meets a library's own timeout can surface as a
    ``TimeoutError`` (an ``OSError``), which the loops catch and carry on from. An error the
    task ended with is logged."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s ended with an error", task.get_name(), exc_info=task.exception())
