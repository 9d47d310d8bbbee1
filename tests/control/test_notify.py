"""Webhook delivery from the events stream, against a real Redis and real loopback receivers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from config.keys import Keys
from control.notify import Notifier, parse_webhook_urls, summary
from splitgate.redis_server import RedisServer
from tests.conftest import StartApp, refused_url

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


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_notifier(redis: Redis) -> AsyncIterator[MakeNotifier]:
    made: list[Notifier] = []

    def make(urls: Sequence[str], **options: Any) -> Notifier:
        options.setdefault("sleep", Sleeps())
        notifier = Notifier(redis, KEYS, urls, SECRET, **options)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


async def receiver(start_app: StartApp, *args: Any, **kwargs: Any) -> tuple[Receiver, str]:
    r = Receiver(*args, **kwargs)
    return r, await start_app(r.app()) + "/hook"


async def publish(redis: Redis, *events: dict[str, Any]) -> list[str]:
    return [str(await redis.xadd(KEYS.events, {"event": json.dumps(e)})) for e in events]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING
    ]


async def test_events_reach_every_url_in_order_signed(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp
) -> None:
    (a, url_a), (b, url_b) = await receiver(start_app), await receiver(start_app)
    events = [event("phase", "25%: 25%"), event("waiting", "approval"), event("promoted")]
    ids = await publish(redis, *events)
    notifier = make_notifier([url_a, url_b])

    assert await notifier.deliver_pending() == 3

    for r in (a, b):
        assert r.bodies == [{**e, "text": summary(e)} for e in events]
        for (headers, body), e, entry_id in zip(r.requests, events, ids, strict=True):
            assert headers["Content-Type"] == "application/json"
            assert headers["User-Agent"] == "splitgate-webhook"
            assert headers["X-Splitgate-Event"] == e["kind"]
            assert headers["X-Splitgate-Delivery"] == entry_id
            expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Splitgate-Signature"], f"sha256={expected}")
    assert a.bodies[0]["text"] == "splitgate: chat-1a2b3c4d (canary, v1.1.0) phase: 25%: 25%"
    assert await redis.get(KEYS.events_delivered) == ids[-1]
    assert await notifier.deliver_pending() == 0
    assert len(a.requests) == len(b.requests) == 3


async def test_no_signature_without_a_secret(redis: Redis, start_app: StartApp) -> None:
    a, url = await receiver(start_app)
    await publish(redis, event("paused"))
    notifier = Notifier(redis, KEYS, [url])
    try:
        assert await notifier.deliver_pending() == 1
    finally:
        await notifier.close()
    assert "X-Splitgate-Signature" not in a.requests[0][0]


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    redis: Redis,
    make_notifier: MakeNotifier,
    start_app: StartApp,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    flaky, url = await receiver(start_app, [status, status])
    await publish(redis, event("rolled_back", "error_rate vs baseline"))
    sleeps = Sleeps()
    notifier = make_notifier([url], backoff_s=0.5, sleep=sleeps)

    assert await notifier.deliver_pending() == 1

    assert len(flaky.requests) == 3
    assert len({body for _, body in flaky.requests}) == 1
    assert sleeps.delays == [0.5, 1.0]
    assert warnings(caplog) == []
    assert await notifier.deliver_pending() == 0
    assert len(flaky.requests) == 3


async def test_a_receiver_that_keeps_failing_is_logged_and_skipped(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    dead, dead_url = await receiver(start_app, then=503)
    good, good_url = await receiver(start_app)
    events = [event("phase", "10%"), event("rolled_back", rollout="chat-99"), event("report")]
    ids = await publish(redis, *events)
    sleeps = Sleeps()
    notifier = make_notifier([dead_url, good_url], attempts=3, sleep=sleeps)

    assert await notifier.deliver_pending() == 3

    assert len(dead.requests) == 9
    assert sleeps.delays == [1.0, 2.0] * 3
    assert [b["kind"] for b in good.bodies] == ["phase", "rolled_back", "report"]
    logged = warnings(caplog)
    assert len(logged) == 3
    origin = dead_url.removesuffix("/hook")
    for message, e in zip(logged, events, strict=True):
        assert origin in message and e["kind"] in message and e["rollout"] in message
        assert "status 503" in message
    assert "/hook" not in logged[0]  # webhook paths hold secrets: only the origin is logged
    assert await redis.get(KEYS.events_delivered) == ids[-1]


@pytest.mark.parametrize("status", [400, 404, 302])
async def test_a_refusal_or_a_redirect_is_not_retried(
    redis: Redis,
    make_notifier: MakeNotifier,
    start_app: StartApp,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    elsewhere, elsewhere_url = await receiver(start_app)
    refusing, url = await receiver(start_app, then=status, location=elsewhere_url)
    ids = await publish(redis, event("approved"))
    sleeps = Sleeps()
    notifier = make_notifier([url], sleep=sleeps)

    assert await notifier.deliver_pending() == 1

    assert len(refusing.requests) == 1
    assert elsewhere.requests == []
    assert sleeps.delays == []
    [message] = warnings(caplog)
    assert f"status {status}" in message and "approved" in message
    assert await redis.get(KEYS.events_delivered) == ids[0]


async def test_a_refused_connection_is_retried_then_skipped(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    good, good_url = await receiver(start_app)
    await publish(redis, event("aborted"), event("resumed"))
    sleeps = Sleeps()
    notifier = make_notifier([refused_url(), good_url], attempts=2, sleep=sleeps)

    assert await notifier.deliver_pending() == 2

    assert sleeps.delays == [1.0, 1.0]
    assert [b["kind"] for b in good.bodies] == ["aborted", "resumed"]
    logged = warnings(caplog)
    assert len(logged) == 2 and all("no answer" in m for m in logged)


async def test_a_slow_receiver_does_not_hold_back_the_others(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp
) -> None:
    slow, slow_url = await receiver(start_app, [500])
    good, good_url = await receiver(start_app)
    await publish(redis, event("phase"))
    backing_off = asyncio.Event()
    release = asyncio.Event()

    async def sleep(delay: float) -> None:
        backing_off.set()
        await release.wait()

    notifier = make_notifier([slow_url, good_url], sleep=sleep)
    delivery = asyncio.create_task(notifier.deliver_pending())
    # Both happen while the slow receiver's retry is still pending.
    await asyncio.wait_for(backing_off.wait(), 10)
    await asyncio.wait_for(good.arrived.wait(), 10)
    assert not delivery.done()
    release.set()
    assert await delivery == 1
    assert len(slow.requests) == 2 and len(good.requests) == 1


async def test_a_new_notifier_continues_after_the_stored_cursor(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp
) -> None:
    r, url = await receiver(start_app)
    await publish(redis, event("phase", "1"), event("phase", "2"), event("phase", "3"))
    first = make_notifier([url])
    assert await first.deliver_pending(limit=2) == 2
    await first.close()
    await publish(redis, event("phase", "4"))

    second = make_notifier([url])
    assert await second.deliver_pending() == 2

    assert [b["detail"] for b in r.bodies] == ["1", "2", "3", "4"]


async def test_a_deposed_leader_stops_between_events(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp
) -> None:
    r, url = await receiver(start_app)
    ids = await publish(redis, *(event("phase", str(i)) for i in range(5)))
    looks = iter([True, True, False])
    assert await make_notifier([url]).deliver_pending(is_leader=lambda: next(looks)) == 2
    assert [b["detail"] for b in r.bodies] == ["0", "1"]
    assert await redis.get(KEYS.events_delivered) == ids[1]  # the successor goes on from here


async def test_webhooks_turned_on_later_start_from_the_newest_event(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp
) -> None:
    r, url = await receiver(start_app)
    await publish(redis, event("phase", "old"))
    notifier = make_notifier([url])
    await notifier.start_from_now()
    await notifier.start_from_now()  # once set, the cursor is not moved again
    await publish(redis, event("phase", "new"))
    assert await notifier.deliver_pending() == 1
    assert [b["detail"] for b in r.bodies] == ["new"]


async def test_entries_that_are_not_events_are_skipped(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    r, url = await receiver(start_app)
    await redis.xadd(KEYS.events, {"event": "{not json"})
    await redis.xadd(KEYS.events, {"record": "{}"})
    await publish(redis, event("post_deploy"))

    assert await make_notifier([url]).deliver_pending() == 3

    assert [b["kind"] for b in r.bodies] == ["post_deploy"]
    assert len(warnings(caplog)) == 2


async def test_only_the_leader_delivers(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp
) -> None:
    r, url = await receiver(start_app)
    [entry_id] = await publish(redis, event("waiting", "promotion"))
    leader = Leader(leading=False)
    loop = asyncio.create_task(make_notifier([url]).run(leader, interval_s=0.01))
    await asyncio.wait_for(leader.asked_more(3), 10)
    assert r.requests == []
    assert await redis.get(KEYS.events_delivered) is None

    leader.leading = True
    await asyncio.wait_for(r.arrived.wait(), 10)
    await asyncio.wait_for(leader.asked_more(2), 10)  # a few loops after the delivery
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert [b["kind"] for b in r.bodies] == ["waiting"]
    assert await redis.get(KEYS.events_delivered) == entry_id


async def test_cancelling_the_loop_ends_it(
    redis: Redis, make_notifier: MakeNotifier, start_app: StartApp
) -> None:
    r, url = await receiver(start_app)
    notifier = make_notifier([url])
    for n in range(20):
        await publish(redis, event("phase", str(n)))
        leader = Leader(leading=True)
        loop = asyncio.create_task(notifier.run(leader, interval_s=0))
        await leader.asked_more(1 + n % 4)  # cancelled at varying points of its work
        loop.cancel()
        done, _ = await asyncio.wait({loop}, timeout=10)
        assert done, f"round {n}: the loop ran on after cancel()"
        assert loop.cancelled()
    await notifier.deliver_pending()
    assert [b["detail"] for b in r.bodies] == [str(n) for n in range(20)]


async def test_the_loop_waits_out_a_redis_outage_and_logs_it_once(
    redis: Redis,
    redis_server: RedisServer,
    make_notifier: MakeNotifier,
    start_app: StartApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    r, url = await receiver(start_app)
    leader = Leader(leading=True)
    await asyncio.to_thread(redis_server.kill)
    loop = asyncio.create_task(make_notifier([url]).run(leader, interval_s=0.01))
    await asyncio.wait_for(leader.asked_more(5), 10)
    assert not loop.done()
    [message] = warnings(caplog)
    assert "Redis" in message

    await asyncio.to_thread(redis_server.start)
    await publish(redis, event("rollback_advised"))
    await asyncio.wait_for(r.arrived.wait(), 10)
    await asyncio.wait_for(leader.asked_more(2), 10)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert len(warnings(caplog)) == 1
    assert [m.getMessage() for m in caplog.records if m.name == LOGGER] == [
        message,
        "webhooks resumed, Redis is back",
    ]


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("", []),
        ("  ", []),
        ("https://hooks.example.com/a", ["https://hooks.example.com/a"]),
        (
            "https://a.example.com/x?t=1, http://127.0.0.1:8080/hook\n https://b.example.com",
            ["https://a.example.com/x?t=1", "http://127.0.0.1:8080/hook", "https://b.example.com"],
        ),
        (
            "http://a.example.com,,http://b.example.com,",
            ["http://a.example.com", "http://b.example.com"],
        ),
    ],
)
def test_parse_webhook_urls(text: str, urls: list[str]) -> None:
    assert parse_webhook_urls(text) == urls


@pytest.mark.parametrize(
    "bad",
    ["hooks.example.com/a", "ftp://example.com/a", "https://", "https:///path", "http://h:99999/"],
)
def test_parse_webhook_urls_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_webhook_urls(f"https://ok.example.com, {bad}")


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        (
            event("rolled_back", "error_rate vs baseline: 12/100 against 1/100"),
            "splitgate: chat-1a2b3c4d (canary, v1.1.0) rolled_back: error_rate vs baseline: 12/100 against 1/100",
        ),
        (event("promoted"), "splitgate: chat-1a2b3c4d (canary, v1.1.0) promoted"),
        ({"route": "chat", "kind": "custom", "detail": "a\nb"}, "splitgate: chat custom: a b"),
        ({}, "splitgate: ? ?"),
    ],
)
def test_summary(fields: dict[str, Any], line: str) -> None:
    assert summary(fields) == line


def test_summary_stays_short() -> None:
    line = summary(event("report", "x" * 5000))
    assert len(line) < 400 and line.endswith("…")
