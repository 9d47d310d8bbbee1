"""Whole canary rollouts with real processes: a control plane, a proxy, Redis, fake backends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from config.keys import Keys
from splitgate.redis_server import RedisServer
from tests.conftest import StartApp, StartUpstream
from tests.integration.conftest import PlaneProcess, RunPlane

TOKEN = "rollout-admin-token-0123456789"
INTERNAL = "internal-testers-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Stack:
    control: PlaneProcess
    proxy: PlaneProcess
    canary: Any
    canary_url: str
    tmp: Path


def plan(canary_url: str) -> str:
    return f"""canary_deployment:
  route: chat
  baseline: stable
  candidate: {{track: canary, version: v1.1.0, upstreams: ["{canary_url}"]}}
  phases:
    - {{name: "5%", traffic: 5, duration: 1s, rollback_if: ["error_rate > 10%"]}}
    - {{name: "25%", traffic: 25, duration: 1s}}
    - {{name: "50%", traffic: 50, duration: 1s}}
    - {{name: "100%", traffic: 100}}
  canary_metrics:
    primary: [{{name: error_rate, threshold: "< 5%", window: 30s}}]
    secondary: []
  comparison: {{method: statistical}}
"""


async def stack(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    control_extra: dict[str, str] | None = None,
    **canary: Any,
) -> Stack:
    _, stable_url = await start_upstream("v1.0.0")
    fake, canary_url = await start_upstream("v1.1.0", **canary)
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    tracks:
      - {{name: stable, version: v1.0.0, upstreams: ["{stable_url}"], weight: 100}}
""",
        encoding="utf-8",
    )
    env = control_env(redis_server)
    control = await run_plane(
        "control", "--config", str(routes), env={**env, **(control_extra or {})}
    )
    proxy = await run_plane(
        "proxy",
        "--config",
        str(routes),
        env={**env, "SPLITGATE_INSTANCE": "p1", "SPLITGATE_INTERNAL_SECRET": INTERNAL},
    )
    return Stack(control, proxy, fake, canary_url, tmp_path)


@pytest.fixture
async def traffic() -> AsyncIterator[Any]:
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()

    async def begin(proxy: PlaneProcess, internal_to: str | None = None) -> None:
        """Four users' workers; with ``internal_to``, a fifth sends testers' requests that ask
        for that track with the trusted override."""

        async def worker(seed: int, headers: dict[str, str] | None = None) -> None:
            rng = random.Random(seed)
            async with aiohttp.ClientSession() as session:
                for _ in range(50_000):
                    if stop.is_set():
                        return
                    sent = headers or {"x-user-id": f"u{rng.randrange(100_000)}"}
                    async with session.get(f"{proxy.url}/v1/models", headers=sent) as r:
                        await r.read()

        tasks.extend(asyncio.create_task(worker(i)) for i in range(4))
        if internal_to is not None:
            tester = {"x-splitgate-track": internal_to, "x-splitgate-internal": INTERNAL}
            tasks.append(asyncio.create_task(worker(99, tester)))

    yield begin
    stop.set()
    for task in tasks:
        await task


def control_env(redis_server: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "SPLITGATE_ADMIN_TOKEN": TOKEN,
        "SPLITGATE_REDIS_URL": redis_server.url,
        "SPLITGATE_ROLLOUT_INTERVAL": "0.3s",
        "SPLITGATE_LEASE": "1s",
        **extra,
    }


async def start_rollout(session: aiohttp.ClientSession, control_url: str, text: str) -> str:
    async with session.post(f"{control_url}/v1/rollouts", data=text, headers=AUTH) as r:
        assert r.status == 201, await r.text()
        rollout_id: str = (await r.json())["id"]
        return rollout_id


async def rollout(
    session: aiohttp.ClientSession, control_url: str, rollout_id: str
) -> dict[str, Any]:
    async with session.get(f"{control_url}/v1/rollouts/{rollout_id}", headers=AUTH) as r:
        record: dict[str, Any] = await r.json()
        return record


async def settled(
    session: aiohttp.ClientSession, control_url: str, rollout_id: str, within: float = 60.0
) -> dict[str, Any]:
    """The rollout's record once it is neither pending nor running."""
    async with asyncio.timeout(within):
        while True:
            record = await rollout(session, control_url, rollout_id)
            if record["state"]["status"] not in ("pending", "running") and not record["desired"]:
                return record
            await asyncio.sleep(0.2)


async def test_a_healthy_canary_is_promoted_by_the_cli(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    traffic: Any,
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server)
    await traffic(s.proxy)
    plan_file = tmp_path / "canary.yaml"
    plan_file.write_text(plan(s.canary_url), encoding="utf-8")
    env = {**os.environ, "SPLITGATE_ADMIN_URL": s.control.url, "SPLITGATE_ADMIN_TOKEN": TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "splitgate",
        "rollout",
        "start",
        str(plan_file),
        "--wait",
        "--timeout",
        "90",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, (out.decode(), err.decode())
    assert "promoted" in out.decode()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{s.control.url}/v1/routes/chat", headers=AUTH) as r,
    ):
        route = (await r.json())["route"]
    # Promoted: the baseline track serves the new version to everyone.
    tracks = {t["name"]: (t["weight"], t["version"]) for t in route["tracks"]}
    assert tracks == {"stable": (100, "v1.1.0"), "canary": (0, "v1.1.0")}


async def test_a_failing_canary_is_rolled_back_and_then_reaches_nobody(
    tmp_path: Path,
    start_upstream: StartUpstream,
    start_app: StartApp,
    run_plane: RunPlane,
    redis_server: RedisServer,
    traffic: Any,
) -> None:
    told: list[tuple[dict[str, Any], bool]] = []
    rolled_back = asyncio.Event()

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
        told.append((json.loads(body), request.headers["X-Splitgate-Signature"] == expected))
        if told[-1][0]["kind"] == "rolled_back":
            rolled_back.set()
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", webhook)
    hook_url = await start_app(receiver) + "/hook"
    hooks = {"SPLITGATE_WEBHOOKS": hook_url, "SPLITGATE_WEBHOOK_SECRET": "hook-secret"}
    s = await stack(
        tmp_path, start_upstream, run_plane, redis_server, control_extra=hooks, error_rate=0.3
    )
    await traffic(s.proxy)
    async with aiohttp.ClientSession() as session:
        rollout_id = await start_rollout(session, s.control.url, plan(s.canary_url))
        record = await settled(session, s.control.url, rollout_id)
        assert record["state"]["status"] == "rolled_back"
        assert record["state"]["history"][-1]["kind"] == "rolled_back"
        # The webhook was told, with a signature it can check.
        await asyncio.wait_for(rolled_back.wait(), 30)
        assert [e["kind"] for e, _ in told] == ["phase", "rolled_back"]
        assert all(signed for _, signed in told)
        event, _ = told[-1]
        assert (event["rollout"], event["route"]) == (rollout_id, "chat")
        assert event["detail"] in event["text"]
        async with asyncio.timeout(10):
            while True:  # the proxy applies the zero weight within a poll
                async with session.get(f"{s.proxy.url}/readyz") as r:
                    routed = (await r.json())["generation"]
                async with session.get(f"{s.control.url}/v1/routes/chat", headers=AUTH) as r:
                    if routed >= (await r.json())["generation"]:
                        break
                await asyncio.sleep(0.1)
        served = len(s.canary.received)
        await asyncio.sleep(1.0)
        assert len(s.canary.received) == served  # after the rollback nobody reaches it
        async with session.post(
            f"{s.control.url}/v1/rollouts/{rollout_id}/resume", headers=AUTH
        ) as r:
            assert r.status == 409 and "rolled_back" in (await r.json())["error"]["message"]


async def test_big_bang_and_a_control_plane_killed_mid_rollout(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    traffic: Any,
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server)
    await traffic(s.proxy)
    slow = plan(s.canary_url).replace("duration: 1s", "duration: 3s")
    async with aiohttp.ClientSession() as session:
        rollout_id = await start_rollout(session, s.control.url, slow)
        async with asyncio.timeout(30):
            while (await rollout(session, s.control.url, rollout_id))["state"]["phase"] < 1:  # noqa: ASYNC110 - polling another process
                await asyncio.sleep(0.2)
        before = await rollout(session, s.control.url, rollout_id)
        s.control.process.kill()  # SIGKILL mid-phase
        await s.control.process.wait()
        restarted = await run_plane(
            "control", "--config", str(tmp_path / "routes.yaml"), env=control_env(redis_server)
        )
        control_url = restarted.url
        resumed = await rollout(session, control_url, rollout_id)
        assert (
            resumed["state"]["history"][: len(before["state"]["history"])]
            == before["state"]["history"]
        )
        done = await settled(session, control_url, rollout_id, within=90)
        assert done["state"]["status"] == "promoted", done["state"]["history"]
        phases = [e["detail"] for e in done["state"]["history"] if e["kind"] == "phase"]
        assert phases == [
            "5%: 5%",
            "25%: 25%",
            "50%: 50%",
            "100%: 100%",
        ]  # none skipped, none twice

        bang = f"""big_bang_deployment:
  route: chat
  candidate: {{track: canary, version: v1.2.0, upstreams: ["{s.canary_url}"]}}
"""
        bang_id = await start_rollout(session, control_url, bang)
        assert (await settled(session, control_url, bang_id, within=30))["state"][
            "status"
        ] == "promoted"
        async with session.get(f"{control_url}/v1/routes/chat", headers=AUTH) as r:
            tracks = {
                t["name"]: (t["weight"], t["version"]) for t in (await r.json())["route"]["tracks"]
            }
        assert tracks == {"stable": (100, "v1.2.0"), "canary": (0, "v1.2.0")}


def blue_green(url: str, regex: str, cleanup: str = "1s") -> str:
    return f"""blue_green_deployment:
  route: chat
  active: stable
  idle: canary
  candidate: {{track: canary, version: v2.0.0, upstreams: ["{url}"]}}
  phase_1_prepare:
    smoke_tests:
      - name: answers
        body: {{model: demo, messages: [{{role: user, content: hi}}]}}
        expect_json_keys: [choices, usage]
      - name: format
        body: {{model: demo, messages: [{{role: user, content: hi}}]}}
        expect_regex: '{regex}'
  phase_2_validate: {{internal_only: true, duration: 1s}}
  phase_4_cleanup: {{after: {cleanup}}}
"""


async def test_blue_green_smoke_tests_gate_the_switch(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    traffic: Any,
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server)
    await traffic(s.proxy)
    async with aiohttp.ClientSession() as session:
        failed_id = await start_rollout(
            session, s.control.url, blue_green(s.canary_url, "NEVER-THERE")
        )
        failed = await settled(session, s.control.url, failed_id)
        assert failed["state"]["status"] == "rolled_back"
        assert "smoke tests failed" in failed["state"]["history"][-1]["detail"]
        # Only the checks reached the new colour: the up check and the two probes; no user.
        assert [r.method for r in s.canary.received if "x-user-id" not in r.headers] == [
            "GET",
            "POST",
            "POST",
        ]
        assert not [r for r in s.canary.received if "x-user-id" in r.headers]

        await traffic(s.proxy, internal_to="canary")  # testers, with the trusted override
        switched_id = await start_rollout(
            session, s.control.url, blue_green(s.canary_url, "token0", cleanup="1h")
        )
        # Validation: the testers' requests reach the idle colour, no user does.
        async with asyncio.timeout(60):
            while True:
                now = await rollout(session, s.control.url, switched_id)
                if now["state"]["phase"] >= 1 and now["desired"] is None:
                    break
                await asyncio.sleep(0.2)
        validated = await rollout(session, s.control.url, switched_id)
        assert validated["state"]["status"] == "running", validated["state"]["history"]
        phases = [e["detail"] for e in validated["state"]["history"] if e["kind"] == "phase"]
        assert phases == ["validate (internal traffic only): 0%", "switch: 100%"]
        testers = [r for r in s.canary.received if "x-user-id" not in r.headers]
        assert len(testers) > 100  # the validation judged the testers' requests
        assert validated["weights"] == {"stable": 0, "canary": 100}
        # The old colour stays registered: an abort switches back at once.
        async with session.post(
            f"{s.control.url}/v1/rollouts/{switched_id}/abort", headers=AUTH
        ) as r:
            assert r.status == 200, await r.text()
        back = await rollout(session, s.control.url, switched_id)
        assert back["state"]["status"] == "aborted"
        assert back["weights"] == {"stable": 100, "canary": 0}


async def test_a_slow_canary_is_rolled_back_by_the_latency_comparison(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    traffic: Any,
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server, ttfb=0.25)
    await traffic(s.proxy)
    async with aiohttp.ClientSession() as session:

        async def baseline_requests() -> int:
            async with session.get(
                f"{s.control.url}/v1/routes/chat/metrics?window=1m", headers=AUTH
            ) as r:
                tracks = (await r.json())["tracks"]
            return sum(t["requests"] for t in tracks if t["track"] == "stable")

        async with asyncio.timeout(30):  # the baseline's latency edge needs data to freeze
            while await baseline_requests() < 300:  # noqa: ASYNC110 - polling another process
                await asyncio.sleep(0.2)
        slow_plan = plan(s.canary_url).replace("duration: 1s", "duration: 30s")
        rollout_id = await start_rollout(session, s.control.url, slow_plan)
        record = await settled(session, s.control.url, rollout_id)
    assert record["latency_edge"] is not None
    assert record["state"]["status"] == "rolled_back", record["state"]["history"]
    assert "slow requests vs baseline" in record["state"]["history"][-1]["detail"]


async def test_manual_rollback_environment_pauses_instead(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    traffic: Any,
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server, error_rate=0.3)
    await traffic(s.proxy)
    development = plan(s.canary_url).replace(
        "  baseline: stable\n", "  baseline: stable\n  environment: development\n"
    )
    async with aiohttp.ClientSession() as session:
        rollout_id = await start_rollout(session, s.control.url, development)
        record = await settled(session, s.control.url, rollout_id)
        assert record["rollback"] == "manual"
        assert record["state"]["status"] == "paused", record["state"]["history"]
        assert record["state"]["history"][-1]["kind"] == "rollback_advised"
        async with session.get(f"{s.control.url}/v1/routes/chat", headers=AUTH) as r:
            weights = {t["name"]: t["weight"] for t in (await r.json())["route"]["tracks"]}
        assert weights["canary"] > 0  # a person decides
        async with session.post(
            f"{s.control.url}/v1/rollouts/{rollout_id}/abort", headers=AUTH
        ) as r:
            assert r.status == 200 and (await r.json())["state"]["status"] == "aborted"
        async with session.get(f"{s.control.url}/v1/routes/chat", headers=AUTH) as r:
            weights = {t["name"]: t["weight"] for t in (await r.json())["route"]["tracks"]}
        assert weights["canary"] == 0


async def test_two_control_planes_and_a_paused_leader_writes_nothing_stale(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    traffic: Any,
) -> None:
    s = await stack(tmp_path, start_upstream, run_plane, redis_server)
    env = control_env(redis_server, SPLITGATE_INSTANCE="second")
    second = await run_plane("control", "--config", str(tmp_path / "routes.yaml"), env=env)
    await traffic(s.proxy)
    redis: Any = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        leader_value = await redis.get(Keys().leader)
        assert leader_value is not None
        leader, follower = (
            (s.control, second) if not leader_value.startswith("second ") else (second, s.control)
        )
        slow = plan(s.canary_url).replace("duration: 1s", "duration: 2s")
        async with aiohttp.ClientSession() as session:
            rollout_id = await start_rollout(session, follower.url, slow)
            await asyncio.sleep(1.0)
            leader.process.send_signal(signal.SIGSTOP)  # paused past its lease
            await asyncio.sleep(2.5)
            leader.process.send_signal(signal.SIGCONT)
            done = await settled(session, follower.url, rollout_id, within=90)
            assert done["state"]["status"] == "promoted", done["state"]["history"]
        records = [json.loads(fields["record"]) for _, fields in await redis.xrange(Keys().audit)]
        epochs = [r["epoch"] for r in records if r["actor"] == "splitgate-rollout"]
        assert (
            epochs == sorted(epochs) and epochs[-1] >= 2
        )  # the old epoch never wrote after the new one
    finally:
        await redis.aclose()
