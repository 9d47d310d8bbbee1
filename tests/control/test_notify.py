"""Webhook delivery from the events stream, against a real Redis and real loopback receivers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging

import pytest
from redis.asyncio import Redis

from control.notify import Notifier, summary
from tests.conftest import StartApp, refused_url
from tests.control.notify_helpers import (
    KEYS,
    LOGGER,
    SECRET,
    MakeNotifier,
    Sleeps,
    event,
    publish,
    receiver,
    warnings,
)


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
