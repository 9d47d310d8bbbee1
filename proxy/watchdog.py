"""A deadline that cancels a task, moved forward cheaply on every sign of progress.

``asyncio.timeout`` would need a new timer for each chunk of a stream. Here moving the
deadline is one float store; the single timer handle is re-armed only when it fires early or
the deadline moves before the time it is armed for.
The task learns that the cancellation was ours from ``fired`` and calls ``Task.uncancel``.
"""

from __future__ import annotations

import asyncio


class Watchdog:
    __slots__ = ("_armed", "_handle", "_loop", "_task", "deadline", "fired", "phase")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        task: asyncio.Task[object],
        deadline: float,
        phase: str,
    ) -> None:
        self._loop = loop
        self._task = task
        self.deadline = deadline
        self.phase = phase
        self.fired = False
        self._armed = deadline
        self._handle: asyncio.TimerHandle | None = loop.call_at(deadline, self._check)

    def set(self, deadline: float, phase: str) -> None:
        """Move the deadline (earlier or later) and name what it now guards."""
        self.phase = phase
        if deadline < self._armed and self._handle is not None:
            self._handle.cancel()
            self._armed = deadline
            self._handle = self._loop.call_at(deadline, self._check)
        self.deadline = deadline

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        if self._loop.time() >= self.deadline:
            self._handle = None
            self.fired = True
            self._task.cancel()
        else:
            self._armed = self.deadline
            self._handle = self._loop.call_at(self.deadline, self._check)
