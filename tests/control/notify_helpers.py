"""What the webhook tests share: events as the runner publishes them, a scripted loopback
receiver, the notifier's recorded backoff sleeps, a scripted leadership check, and publishing
to the events stream."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from config.keys import Keys
from control.notify import Notifier
from tests.conftest import StartApp

KEYS = Keys()
SECRET = b"s3cret"
LOGGER = "splitgate.control.notify"

MakeNotifier = Callable[..., Notifier]


def event(kind: str, detail: str = "", rollout: str = "chat-1a2b3c4d") -> dict[str, Any]:
    return {
        "rollout": rollout,
        "route": "chat",
        "strategy": "canary",
        "kind": kind,
        "detail": detail,
        "status": "running",
        "phase": 1,
        "version": "v1.1.0",
        "at": 1790000000.0,
    }


class Receiver:
    """A webhook receiver that answers ``script`` in order, then ``then``; records requests."""

    def __init__(self, script: Sequence[int] = (), then: int = 200, location: str = "") -> None:
        self.script = list(script)
        self.then = then
        self.location = location
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        self.arrived.set()
        status = self.script.pop(0) if self.script else self.then
        headers = {"Location": self.location} if self.location else {}
        return web.Response(status=status, text="nope" if status >= 300 else "ok", headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


class Sleeps:
    """The notifier's backoff sleep: records each delay, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Leader:
    """``is_leader`` for ``Notifier.run``, counting how often the loop asked."""

    def __init__(self, leading: bool) -> None:
        self.leading = leading
        self.asked = 0
        self._asked = asyncio.Event()

    def __call__(self) -> bool:
        self.asked += 1
        self._asked.set()
        return self.leading

    async def asked_more(self, times: int) -> None:
        target = self.asked + times
        while self.asked < target:
            self._asked.clear()
            await self._asked.wait()


async def receiver(start_app: StartApp, *args: Any, **kwargs: Any) -> tuple[Receiver, str]:
    r = Receiver(*args, **kwargs)
    return r, await start_app(r.app()) + "/hook"


async def publish(redis: Redis, *events: dict[str, Any]) -> list[str]:
    return [str(await redis.xadd(KEYS.events, {"event": json.dumps(e)})) for e in events]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]
