"""Whole canary rollouts with real processes: a control plane, a proxy, Redis, fake backends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from splitgate.redis_server import RedisServer
from tests.conftest import StartApp, StartUpstream
from tests.integration.conftest import RunPlane
from tests.integration.rollout_stack import AUTH, TOKEN, plan, settled, stack, start_rollout


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
