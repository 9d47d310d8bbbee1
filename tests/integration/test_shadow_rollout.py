"""A canary that opens with a shadow phase, with real processes (a control plane, a proxy,
Redis, fake backends) and a judge that reads the pairs and sends verdicts: a good candidate
goes on to live traffic, a failing one is rolled back before any user reached it, and the
route's mirroring ends with the phase either way."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import PlaneProcess, RunPlane, run_cli
from tests.integration.rollout_stack import AUTH, TOKEN, control_env, rollout, start_rollout

KEY = "shadow-signing-key-0123456789abcdef"


def plan(canary_url: str, criteria: str) -> str:
    return f"""canary_deployment:
  route: chat
  baseline: stable
  candidate: {{track: canary, version: v2, upstreams: ["{canary_url}"]}}
  phases:
    - name: shadow
      shadow: {{percent: 100, store_text: true}}
      duration: 1s
      max_duration: 120s  # the judge's verdicts decide it, however loaded the machine
      criteria: {criteria}
      rollback_if: ["error_rate > 20%"]
    - {{name: "50%", traffic: 50, duration: 1s}}
    - {{name: "100%", traffic: 100}}
  canary_metrics:
    primary: [{{name: error_rate, threshold: "< 5%"}}]
    secondary: []
"""


async def planes(
    tmp_path: Path, start_upstream: StartUpstream, run_plane: RunPlane, redis: RedisServer
) -> tuple[PlaneProcess, PlaneProcess, str]:
    _, stable_url = await start_upstream("v1")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    tracks:
      - {{name: stable, version: v1, upstreams: ["{stable_url}"], weight: 100}}
""",
        encoding="utf-8",
    )
    env = control_env(redis, SPLITGATE_SIGNING_KEY=KEY)
    control = await run_plane("control", "--config", str(routes), env=env)
    proxy = await run_plane(
        "proxy", "--config", str(routes), env={**env, "SPLITGATE_INSTANCE": "p1"}
    )
    return control, proxy, stable_url


class Users:
    """Four users chatting through the proxy; every answer's track is noted."""

    def __init__(self) -> None:
        self.tracks: list[str] = []
        self.statuses: list[int] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def begin(self, proxy: PlaneProcess) -> None:
        self._tasks = [asyncio.create_task(self._user(proxy, seed)) for seed in range(4)]

    async def _user(self, proxy: PlaneProcess, seed: int) -> None:
        rng = random.Random(seed)
        body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as session:
            for n in range(20_000):
                if self._stop.is_set():
                    return
                body["stream"] = n % 2 == 0
                headers = {"x-user-id": f"u{rng.randrange(1000)}"}
                async with session.post(
                    f"{proxy.url}/v1/chat/completions", json=body, headers=headers
                ) as r:
                    await r.read()
                    self.statuses.append(r.status)
                    self.tracks.append(r.headers.get("X-Splitgate-Track", "?"))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            await task


@pytest.fixture
async def users() -> AsyncIterator[Users]:
    found = Users()
    yield found
    await found.stop()


async def judge(
    session: aiohttp.ClientSession,
    control: PlaneProcess,
    stop: asyncio.Event,
    verdict_given: str = "better",
) -> int:
    """Reads the pairs and gives each the same verdict: the verdicts counted."""
    judged: set[str] = set()
    counted = 0
    while not stop.is_set():
        url = f"{control.url}/v1/routes/chat/shadow/pairs?limit=200"
        async with session.get(url, headers=AUTH) as r:
            assert r.status == 200, await r.text()
            page = await r.json()
        for pair in page["pairs"]:
            if pair["pair_id"] in judged:
                continue
            judged.add(pair["pair_id"])
            verdict = {"request_id": pair["pair_id"], "shadow_verdict": verdict_given}
            async with session.post(f"{control.url}/v1/feedback", json=verdict, headers=AUTH) as r:
                assert r.status in (200, 202), await r.text()
                counted += (await r.json())["counted"]
        await asyncio.sleep(0.2)
    return counted


async def route_of(session: aiohttp.ClientSession, control: PlaneProcess) -> dict[str, Any]:
    async with session.get(f"{control.url}/v1/routes/chat", headers=AUTH) as r:
        route: dict[str, Any] = (await r.json())["route"]
        return route


async def until(
    session: aiohttp.ClientSession, control: PlaneProcess, rollout_id: str, done: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    try:
        async with asyncio.timeout(150):
            while True:
                record = await rollout(session, control.url, rollout_id)
                if done(record):
                    return record
                await asyncio.sleep(0.2)
    except TimeoutError:
        state = record.get("state", {})
        raise AssertionError(
            f"still {state.get('status')} in phase {state.get('phase')}, waiting for "
            f"{record.get('waiting_for')!r}; history {state.get('history')}; "
            f"verdicts {record.get('verdicts')}"
        ) from None


async def test_a_good_shadow_is_judged_by_its_pairs_and_goes_on_to_live_traffic(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    users: Users,
) -> None:
    control, proxy, _ = await planes(tmp_path, start_upstream, run_plane, redis_server)
    canary, canary_url = await start_upstream("v2")
    users.begin(proxy)
    criteria = '{error_rate: "< 5%", shadow_win_rate: "> 45%"}'
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        rollout_id = await start_rollout(session, control.url, plan(canary_url, criteria))
        judging = asyncio.create_task(judge(session, control, stop))
        try:
            shadowed = await until(
                session,
                control,
                rollout_id,
                lambda r: r["state"]["phase"] == 0 and r["state"]["generation"] is not None,
            )
            assert shadowed["state"]["status"] == "running"
            route = await route_of(session, control)
            assert route["shadow"]["track"] == "canary" and route["shadow"]["percent"] == 100
            assert {t["name"]: t["weight"] for t in route["tracks"]}["canary"] == 0
            live = await until(session, control, rollout_id, lambda r: r["state"]["phase"] >= 1)
        finally:
            stop.set()
            counted = await judging
        route = await route_of(session, control)
        code, out, err = await run_cli(
            "shadow", "export", "chat", admin_url=control.url, token=TOKEN
        )
    assert live["state"]["status"] in ("running", "promoted"), live["state"]
    assert "shadow" not in route or route["shadow"] is None  # the mirroring ended with the phase
    assert counted > 0
    history = [e["detail"] for e in live["state"]["history"] if e["kind"] == "phase"]
    assert history[0].startswith("shadow") and "shadow 100" in history[0]
    # Copies reached the candidate before any user did, each marked as a copy (the control
    # plane's own GET /v1/models checks the upstream before the rollout starts).
    posts = [r for r in canary.received if r.method == "POST"]
    assert posts[0].headers.get("x-splitgate-shadow") == "1"
    assert any(r.headers.get("x-splitgate-shadow") is None for r in posts)  # then live users
    assert code == 0, err
    exported = [json.loads(line) for line in out.splitlines()]
    assert exported and all(p["shadow"]["version"] == "v2" for p in exported)
    assert all(p["primary"]["text"].startswith("v1-token0") for p in exported)


async def test_a_failing_shadow_is_rolled_back_before_any_user_meets_it(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    users: Users,
) -> None:
    control, proxy, _ = await planes(tmp_path, start_upstream, run_plane, redis_server)
    canary, canary_url = await start_upstream("v2", error_rate=0.5)
    users.begin(proxy)
    async with aiohttp.ClientSession() as session:
        rollout_id = await start_rollout(
            session, control.url, plan(canary_url, '{error_rate: "< 5%"}')
        )
        record = await until(
            session, control, rollout_id, lambda r: r["state"]["status"] == "rolled_back"
        )
        async with asyncio.timeout(30):
            while True:  # the rollback's write reaches the proxy within a poll
                async with session.get(f"{control.url}/v1/routes/chat", headers=AUTH) as r:
                    current = await r.json()
                async with session.get(f"{proxy.url}/readyz") as r:
                    applied = (await r.json())["generation"]
                if current["route"].get("shadow") is None and applied >= current["generation"]:
                    break
                await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    seen = len(canary.received)
    await asyncio.sleep(1.0)
    await users.stop()
    assert record["state"]["phase"] == 0  # still in the shadow phase
    assert "error_rate" in record["state"]["history"][-1]["detail"]
    assert len(canary.received) == seen  # no copies after the rollback
    posts = [r for r in canary.received if r.method == "POST"]
    assert posts and all(r.headers.get("x-splitgate-shadow") == "1" for r in posts)
    assert set(users.tracks) == {"stable"} and set(users.statuses) == {200}


async def test_a_shadow_its_judge_finds_worse_is_rolled_back_on_its_win_rate(
    tmp_path: Path,
    start_upstream: StartUpstream,
    run_plane: RunPlane,
    redis_server: RedisServer,
    users: Users,
) -> None:
    control, proxy, _ = await planes(tmp_path, start_upstream, run_plane, redis_server)
    canary, canary_url = await start_upstream("v2")
    users.begin(proxy)
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        rollout_id = await start_rollout(
            session, control.url, plan(canary_url, '{shadow_win_rate: "> 45%"}')
        )
        judging = asyncio.create_task(judge(session, control, stop, "worse"))
        try:
            record = await until(
                session,
                control,
                rollout_id,
                lambda r: r["state"]["status"] not in ("pending", "running"),
            )
        finally:
            stop.set()
            counted = await judging
    assert record["state"]["status"] == "rolled_back", record["state"]
    assert "shadow_win_rate" in record["state"]["history"][-1]["detail"]
    assert counted > 0
    posts = [r for r in canary.received if r.method == "POST"]
    assert all(r.headers.get("x-splitgate-shadow") == "1" for r in posts)
