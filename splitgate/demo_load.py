"""``splitgate demo --load``: the demo drives its own proxy, so rollouts have traffic to judge.

Sticky users (a pool of ids sent in ``x-user-id``) ask for chat completions, some streamed and
some not, at a steady rate over one ``aiohttp.ClientSession`` on loopback. At most
``max_in_flight`` requests are open at once: when the proxy is slower than the rate, the
generator skips a tick rather than piling up requests. Every ``report_every`` seconds it
prints one line: the rate it reached and how the answers split between the tracks.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger("splitgate.demo.load")

CHAT_PATH = "/v1/chat/completions"
USER_HEADER = "x-user-id"
TRACK_HEADER = "X-Splitgate-Track"


@dataclass(frozen=True)
class LoadSettings:
    rps: float = 20.0
    users: int = 500
    """Distinct user ids; each user always lands on the same track for the same weights."""
    stream_share: float = 0.5
    """Share of requests that ask for ``"stream": true``."""
    max_in_flight: int = 64
    timeout_s: float = 30.0
    report_every: float = 30.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.rps <= 1000:
            raise ValueError(f"--load: a rate between 0 and 1000 requests/s, not {self.rps:g}")
        if self.users < 1 or self.max_in_flight < 1:
            raise ValueError("the load needs at least one user and one request in flight")
        if not 0 <= self.stream_share <= 1:
            raise ValueError("stream_share is a share between 0 and 1")


@dataclass(frozen=True)
class Planned:
    """One request to send: who asks, and whether the answer streams."""

    user: str
    stream: bool

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": "demo",
            "user": self.user,
            "messages": [{"role": "user", "content": "hi, which version are you?"}],
        }
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body


def user_id(index: int) -> str:
    return f"demo-user-{index:04d}"


def plan_requests(settings: LoadSettings, rng: random.Random) -> Callable[[], Planned]:
    """A source of requests: a user drawn from the pool, streaming with ``stream_share``."""

    def draw() -> Planned:
        user = user_id(rng.randrange(settings.users))
        return Planned(user, rng.random() < settings.stream_share)

    return draw


@dataclass
class LoadStats:
    sent: int = 0
    skipped: int = 0
    """Ticks with ``max_in_flight`` requests already open: nothing was sent."""
    failed: int = 0
    tracks: Counter[str] = field(default_factory=Counter)
    """Answers (any status) per ``X-Splitgate-Track``; ``-`` without one."""

    def copy(self) -> LoadStats:
        return LoadStats(self.sent, self.skipped, self.failed, Counter(self.tracks))

    def minus(self, before: LoadStats) -> LoadStats:
        """What happened since ``before`` (an earlier copy)."""
        return LoadStats(
            self.sent - before.sent,
            self.skipped - before.skipped,
            self.failed - before.failed,
            self.tracks - before.tracks,
        )

    def summary(self, elapsed: float) -> str:
        answered = sum(self.tracks.values())
        rate = self.sent / elapsed if elapsed > 0 else 0.0
        split = "  ".join(
            f"{track} {100 * n / answered:.0f}%" for track, n in sorted(self.tracks.items())
        )
        errors = 100 * self.failed / answered if answered else 0.0
        return f"{rate:.1f} req/s  {split or 'no answers yet'}  errors {errors:.1f}%"


async def send(
    session: aiohttp.ClientSession, url: str, planned: Planned, stats: LoadStats
) -> None:
    """Send one request and read the whole answer (every chunk of a stream)."""
    try:
        async with session.post(
            url, json=planned.body(), headers={USER_HEADER: planned.user}
        ) as response:
            async for _ in response.content.iter_any():
                pass
            stats.tracks[response.headers.get(TRACK_HEADER, "-")] += 1
            if response.status != 200:
                stats.failed += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        stats.failed += 1
        stats.tracks["-"] += 1
        log.debug("load: %s failed: %s", planned.user, exc)


class LoadGenerator:
    """Paces requests at ``settings.rps`` until cancelled; every request task is awaited."""

    def __init__(
        self,
        base_url: str,
        settings: LoadSettings,
        out: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = base_url.rstrip("/") + CHAT_PATH
        self.settings = settings
        self.stats = LoadStats()
        self._out = out
        self._clock = clock
        self._draw = plan_requests(settings, random.Random(settings.seed))
        self._tasks: set[asyncio.Task[None]] = set()
        self._reported = LoadStats()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.settings.max_in_flight)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            try:
                await self._pace(session)
            finally:
                await self._drain()

    async def _pace(self, session: aiohttp.ClientSession) -> None:
        gap = 1.0 / self.settings.rps
        start = self._clock()
        next_at, last_report, report_at = start, start, start + self.settings.report_every
        while True:
            next_at += gap
            if len(self._tasks) >= self.settings.max_in_flight:
                self.stats.skipped += 1
            else:
                self._spawn(session)
            now = self._clock()
            if now >= report_at:
                self._report(now - last_report)
                last_report, report_at = now, report_at + self.settings.report_every
            if next_at < now - 1.0:
                next_at = now  # the loop was held up: do not burst to catch up
            await asyncio.sleep(max(0.0, next_at - now))

    def _report(self, elapsed: float) -> None:
        """One line on the requests since the last report."""
        period = self.stats.minus(self._reported)
        self._reported = self.stats.copy()
        self._out(f"{time.strftime('%H:%M:%S')}  load     {period.summary(elapsed)}")

    def _spawn(self, session: aiohttp.ClientSession) -> None:
        task = asyncio.create_task(send(session, self.url, self._draw(), self.stats))
        self.stats.sent += 1
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        """Cancel the requests still open and wait for each, so nothing outlives the session."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
