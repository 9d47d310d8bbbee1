"""The control plane's loops never die in silence: counted, shown in /readyz, and going on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from config.keys import Keys
from control.app import RUNNER, ControlApp
from control.loops import Loops
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN


def loop_errors(text: str) -> dict[str, float]:
    return {
        s.labels["loop"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "splitgate_control_loop_errors_total"
    }


async def test_a_failing_pass_is_counted_and_the_loop_goes_on() -> None:
    registry = CollectorRegistry()
    loops = Loops(registry, clock=lambda: 42.0)
    calls = 0

    async def tick() -> None:
        nonlocal calls
        calls += 1
        if calls in (1, 3):
            raise KeyError("state")

    task = asyncio.create_task(loops.run("runner", 0.001, tick))
    try:
        async with asyncio.timeout(10):
            while calls < 5:  # noqa: ASYNC110 - the loop under test owns the count
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    health = loops.health["runner"].as_json()
    assert health["errors"] == 2 and health["passes"] >= 2
    assert health["last_error"] == {"at": 42.0, "record": None, "error": "KeyError"}
    assert registry.get_sample_value("splitgate_control_loop_errors_total", {"loop": "runner"}) == 2


def test_a_failure_for_one_record_names_it() -> None:
    loops = Loops(CollectorRegistry(), clock=lambda: 7.0)
    loops.reporter("flag-schedules")("beta-users", ValueError("bad"))
    assert loops.health["flag-schedules"].as_json()["last_error"] == {
        "at": 7.0,
        "record": "beta-users",
        "error": "ValueError",
    }


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(
        connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05, rollout_interval_s=0.05
    )
    await app.start()
    yield app
    await app.close()


async def test_readyz_and_metrics_show_a_quarantined_record_without_a_token(
    client: TestClient[Any, Any], control: ControlApp
) -> None:
    # Only the leader runs the loop: wait for the lease.
    async with asyncio.timeout(10):
        while not control.leadership.leading:  # noqa: ASYNC110 - owned by the lease loop
            await asyncio.sleep(0.02)
    keys = Keys()
    await control.redis.sadd(keys.rollouts, "chat-garbage")
    await control.redis.set(keys.rollout("chat-garbage"), "{not json")
    async with asyncio.timeout(10):
        while "chat-garbage" in await control.redis.smembers(keys.rollouts):  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    r = await client.get("/readyz")
    assert r.status == 200
    body = json.loads(await r.text())
    assert body["status"] == "ready"
    details = body["details"]
    assert details["redis"] == {"ok": True} and details["leading"] is True
    assert details["quarantined_rollouts"] == 1
    runner = details["loops"][RUNNER]
    assert runner["errors"] == 1
    assert runner["last_error"]["record"] == "chat-garbage"
    assert runner["last_error"]["error"] == "ValueError"
    assert "not json" not in await r.text()  # the record's content stays out of it

    r = await client.get("/metrics")
    assert r.status == 200
    assert loop_errors(await r.text()) == {RUNNER: 1.0, "flag-schedules": 0.0}

    r = await client.get("/v1/rollouts", headers=AUTH)
    listed = await r.json()
    assert listed["rollouts"] == [] and listed["next_cursor"] is None
    assert [q["id"] for q in listed["quarantined"]] == ["chat-garbage"]


async def test_readyz_is_503_when_redis_is_gone(
    client: TestClient[Any, Any], control: ControlApp, redis_server: RedisServer
) -> None:
    await asyncio.to_thread(redis_server.stop)
    r = await client.get("/readyz")
    assert r.status == 503
    body = json.loads(await r.text())
    assert body["status"] == "not_ready" and body["details"]["redis"]["ok"] is False


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=nope", "cursor"),
        ("cursor=nan:x", "cursor"),
    ],
)
async def test_bad_list_parameters_are_400_naming_the_field(
    client: TestClient[Any, Any], query: str, field: str
) -> None:
    r = await client.get(f"/v1/rollouts?{query}", headers=AUTH)
    assert r.status == 400
    assert (await r.json())["errors"][0]["field"] == field


@pytest.fixture
async def client(control: ControlApp) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(control.web_app())) as c:
        yield c
