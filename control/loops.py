"""The control plane's background loops, supervised: a failure is seen, and the loop goes on.

Each loop (the rollout runner, the flag schedules) runs one pass per interval. An exception
in a pass, or in the work for one record within a pass, is logged with the record it
concerned, counted in ``splitgate_control_loop_errors_total{loop}`` and kept as the loop's
last error, which ``/readyz`` shows; the next pass runs as usual. Only cancellation ends a
loop. Redis being unreachable counts too, logged without a traceback: it is not a bug, and
it has its own signal (``/readyz``'s ``redis``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

log = logging.getLogger("splitgate.control.loops")


class LoopHealth:
    """What ``/readyz`` shows of one loop."""

    __slots__ = ("errors", "last_error", "last_ok_at", "passes")

    def __init__(self) -> None:
        self.passes = 0
        self.errors = 0
        self.last_ok_at: float | None = None
        self.last_error: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "errors": self.errors,
            "last_ok_at": self.last_ok_at,
            "last_error": self.last_error,
        }


class Loops:
    """The supervised loops of one control plane, with their error counter and health."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self._errors = Counter(
            "splitgate_control_loop_errors_total",
            "Failed passes of a control-plane loop, or failures for one record within a pass; "
            "the loop goes on.",
            ["loop"],
            registry=registry,
        )
        self._clock = clock
        self.health: dict[str, LoopHealth] = {}

    def add(self, name: str) -> LoopHealth:
        """Register a loop: its counter shows 0 before its first failure."""
        self._errors.labels(name)
        return self.health.setdefault(name, LoopHealth())

    def failed(self, name: str, exc: BaseException, record: str | None = None) -> None:
        """Log, count and keep one failure of loop ``name`` (for ``record``, if one)."""
        health = self.add(name)
        health.errors += 1
        health.last_error = {
            "at": self._clock(),
            "record": record,
            "error": type(exc).__name__,  # the message is in the log: it may quote the record
        }
        self._errors.labels(name).inc()
        about = f" (record {record})" if record is not None else ""
        if isinstance(exc, (RedisError, OSError)):
            log.warning("%s%s: Redis unavailable: %s", name, about, exc)
        else:
            log.error("%s%s: failed; the loop goes on", name, about, exc_info=exc)

    def reporter(self, name: str) -> Callable[[str, BaseException], None]:
        """A callback for failures about one record within loop ``name``'s pass."""
        return lambda record, exc: self.failed(name, exc, record)

    async def run(
        self,
        name: str,
        interval_s: float,
        tick: Callable[[], Awaitable[None]],
        when: Callable[[], bool] = lambda: True,
    ) -> None:
        """Every ``interval_s``, while ``when()``: one pass of ``tick``. Never returns."""
        health = self.add(name)
        while True:
            await asyncio.sleep(interval_s)
            if not when():
                continue
            try:
                await tick()
            except Exception as exc:
                self.failed(name, exc)
            else:
                health.passes += 1
                health.last_ok_at = self._clock()
