"""The demo's load: sticky users from a pool, a streaming mix, bounded, and a clean stop."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from splitgate.demo_load import LoadGenerator, LoadSettings, LoadStats, plan_requests, user_id
from tests.conftest import StartUpstream


def test_users_come_from_the_pool_and_half_the_requests_stream() -> None:
    draw = plan_requests(LoadSettings(users=50, stream_share=0.5), random.Random(7))
    planned = [draw() for _ in range(4000)]
    users = Counter(p.user for p in planned)
    assert set(users) <= {user_id(i) for i in range(50)}
    assert len(users) == 50  # every user comes back: 80 requests each on average
    streamed = sum(p.stream for p in planned) / len(planned)
    assert 0.45 < streamed < 0.55


def test_a_request_body_asks_for_a_stream_only_when_planned() -> None:
    draw = plan_requests(LoadSettings(stream_share=1.0), random.Random(1))
    streamed = draw().body()
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    plain = plan_requests(LoadSettings(stream_share=0.0), random.Random(1))().body()
    assert "stream" not in plain
    assert plain["messages"][0]["role"] == "user" and plain["user"].startswith("demo-user-")


@pytest.mark.parametrize(
    "bad", [{"rps": 0}, {"rps": -1}, {"rps": 5000}, {"users": 0}, {"stream_share": 2}]
)
def test_settings_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoadSettings(**bad)  # type: ignore[arg-type]


def test_a_summary_reports_rate_split_and_errors_of_one_period() -> None:
    stats = LoadStats(sent=40, failed=1, tracks=Counter(stable=30, canary=10))
    before = LoadStats(sent=20, tracks=Counter(stable=15, canary=5))
    period = stats.minus(before)
    assert period.summary(2.0) == "10.0 req/s  canary 25%  stable 75%  errors 5.0%"
    assert LoadStats().summary(1.0) == "0.0 req/s  no answers yet  errors 0.0%"


async def test_it_drives_a_backend_and_stops_cleanly(start_upstream: StartUpstream) -> None:
    fake, url = await start_upstream("v1.0.0", tps=200)
    lines: list[str] = []
    settings = LoadSettings(rps=100, users=20, report_every=0.3, seed=3)
    load = LoadGenerator(url, settings, out=lines.append)
    task = asyncio.create_task(load.run())
    async with asyncio.timeout(10):
        while len(fake.received) < 40 or not lines:  # noqa: ASYNC110 - polling
            await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert load.stats.sent >= 40 and load.stats.failed == 0
    assert set(fake.user_ids) <= {user_id(i) for i in range(20)}
    assert fake.completed_streams > 0  # some streamed
    assert any(not r.body.count(b'"stream"') for r in fake.received)  # some did not
    assert "load" in lines[0] and "req/s" in lines[0]


async def test_in_flight_requests_are_bounded(start_upstream: StartUpstream) -> None:
    _, url = await start_upstream("v1.0.0", ttfb=5.0)  # nothing answers in time
    load = LoadGenerator(url, LoadSettings(rps=200, max_in_flight=5, seed=1), out=lambda _: None)
    task = asyncio.create_task(load.run())
    async with asyncio.timeout(10):
        while load.stats.skipped < 20:  # noqa: ASYNC110 - polling
            await asyncio.sleep(0.02)
    assert load.stats.sent == 5
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert load.stats.sent == 5
