"""Rollouts that outlive a control plane, with real processes: one killed mid-rollout is
restarted and resumes where it stood (no phase skipped, none twice), then a big-bang
deployment; and of two control planes, a leader paused past its lease writes nothing stale."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from config.keys import Keys
from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import RunPlane
from tests.integration.rollout_stack import (
    AUTH,
    control_env,
    plan,
    rollout,
    settled,
    stack,
    start_rollout,
)


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
