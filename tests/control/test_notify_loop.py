"""The webhook notifier over time, against a real Redis and real loopback receivers: the
delivered cursor a new notifier continues from, a deposed leader stopping between events,
entries that are not events, and the leader's loop (only the leader delivers, cancelling
ends it, a Redis outage is waited out and logged once)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from splitgate.redis_server import RedisServer
from tests.conftest import StartApp
from tests.control.notify_helpers import (
    KEYS,
    LOGGER,
    Leader,
    MakeNotifier,
    event,
    publish,
    receiver,
    warnings,
)


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
