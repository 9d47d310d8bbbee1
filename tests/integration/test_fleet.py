"""A fleet: one control plane and three proxy replicas in separate processes, one real Redis.

A weight change reaches every replica (acks) and the traffic follows it; Redis crashing,
freezing and coming back empty costs no request and moves no user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import PlaneProcess, RunPlane, run_cli

TOKEN = "fleet-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USERS = [f"user-{i}" for i in range(200)]


@dataclass
class Fleet:
    control: PlaneProcess
    proxies: list[PlaneProcess]
    session: aiohttp.ClientSession

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, self.control.url + path, json=body, headers=AUTH
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def set_canary(self, weight: float) -> int:
        answer = await self.admin(
            "PUT",
            "/v1/routes/chat/weights",
            {"weights": {"stable": 100 - weight, "canary": weight}},
        )
        generation: int = answer["generation"]
        return generation

    async def all_acked(self, generation: int) -> bool:
        async with self.session.get(self.control.url + "/v1/routes", headers=AUTH) as r:
            if r.status != 200:  # e.g. 503 while Redis is empty and not yet re-seeded
                return False
            replicas = (await r.json())["replicas"]
        return len(replicas) == 3 and all(
            ack["generation"] == generation for ack in replicas.values()
        )

    async def assignments(self) -> list[dict[str, str]]:
        """For each replica: user → track, for every user."""
        out = []
        for proxy in self.proxies:
            seen = {}
            for user in USERS:
                async with self.session.get(
                    f"{proxy.url}/v1/models", headers={"x-user-id": user}
                ) as r:
                    assert r.status == 200
                    seen[user] = r.headers["X-Splitgate-Track"]
            out.append(seen)
        return out


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 - polling other processes
            await asyncio.sleep(0.05)


@pytest.fixture
async def fleet(
    tmp_path: Path, start_upstream: StartUpstream, run_plane: RunPlane, redis_server: RedisServer
) -> Fleet:
    _, stable = await start_upstream("v1.0.0")
    _, canary = await start_upstream("v1.1.0")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    stickiness: [header:x-user-id, client_ip]
    tracks:
      - {{name: stable, version: v1.0.0, upstreams: ["{stable}"], weight: 95}}
      - {{name: canary, version: v1.1.0, upstreams: ["{canary}"], weight: 5}}
""",
        encoding="utf-8",
    )
    env = {"SPLITGATE_ADMIN_TOKEN": TOKEN, "SPLITGATE_REDIS_URL": redis_server.url}
    control = await run_plane("control", "--config", str(routes), env=env)
    proxies = [
        await run_plane(
            "proxy", "--config", str(routes), env={**env, "SPLITGATE_INSTANCE": f"proxy-{i}"}
        )
        for i in range(3)
    ]
    return Fleet(control, proxies, aiohttp.ClientSession())


@pytest.fixture
async def session_closer(fleet: Fleet) -> Any:
    yield
    await fleet.session.close()


@pytest.mark.usefixtures("session_closer")
async def test_weight_change_reaches_every_replica_and_moves_only_new_users(fleet: Fleet) -> None:
    await eventually(lambda: fleet.all_acked(1))
    at_5 = await fleet.assignments()
    assert at_5[0] == at_5[1] == at_5[2]  # every replica agrees on every user
    generation = await fleet.set_canary(25)
    await eventually(lambda: fleet.all_acked(generation))
    at_25 = await fleet.assignments()
    assert at_25[0] == at_25[1] == at_25[2]
    canary_before = {u for u, t in at_5[0].items() if t == "canary"}
    canary_after = {u for u, t in at_25[0].items() if t == "canary"}
    assert canary_before < canary_after  # nobody left the canary; only stable users joined it
    assert 25 < len(canary_after) < 80  # about 25 % of 200


@pytest.mark.usefixtures("session_closer")
async def test_redis_crash_freeze_and_empty_restart_cost_nothing(
    fleet: Fleet, redis_server: RedisServer
) -> None:
    generation = await fleet.set_canary(20)
    await eventually(lambda: fleet.all_acked(generation))
    before = await fleet.assignments()
    failures: list[str] = []
    stop = asyncio.Event()

    async def steady_traffic() -> int:
        sent = 0
        while not stop.is_set() and sent < 20_000:
            proxy = fleet.proxies[sent % 3]
            user = USERS[sent % len(USERS)]
            async with fleet.session.get(
                f"{proxy.url}/v1/models", headers={"x-user-id": user}
            ) as r:
                if r.status != 200 or r.headers["X-Splitgate-Track"] != before[0][user]:
                    failures.append(f"{user}: {r.status} {r.headers.get('X-Splitgate-Track')}")
            sent += 1
            await asyncio.sleep(0.002)
        return sent

    traffic = asyncio.create_task(steady_traffic())
    try:
        redis_server.pause()  # frozen: requests must not wait on it
        await asyncio.sleep(1.0)
        redis_server.resume()
        redis_server.kill()  # crash
        await asyncio.sleep(1.5)
        await asyncio.to_thread(redis_server.start)  # back, empty: the control plane re-seeds it
        await eventually(lambda: fleet.all_acked(generation + 1))
    finally:
        stop.set()
        sent = await traffic
    assert sent > 100
    assert failures == []
    after = await fleet.assignments()
    moved = {
        u: (before[0][u], [a[u] for a in after])
        for u in USERS
        if any(a[u] != before[0][u] for a in after)
    }
    assert moved == {}
    routes = await fleet.admin("GET", "/v1/routes")
    assert [t["weight"] for t in routes["routes"][0]["tracks"]] == [
        80,
        20,
    ]  # the last known weights


@pytest.mark.usefixtures("session_closer")
async def test_weights_command_line(fleet: Fleet) -> None:
    async def splitgate(*args: str) -> tuple[int, str, str]:
        return await run_cli(*args, admin_url=fleet.control.url, token=TOKEN, within_s=30)

    code, out, _ = await splitgate(
        "weights", "set", "chat", "stable=75", "canary=25", "--reason", "phase 2", "--wait", "20"
    )
    assert code == 0
    assert "route chat at generation 2" in out and "canary" in out and "25 %" in out
    assert "replicas: 3 live, 0 behind" in out
    code, _, err = await splitgate("weights", "set", "chat", "stable=75", "canary=35")
    assert code == 1
    assert "422 weights: weights must add up to 100 (got 110" in err
    code, _, err = await splitgate("weights", "set", "chat", "stable=75", "blue=25")
    assert (code, err.strip()) == (
        1,
        "splitgate weights: 422 weights.blue: route 'chat' has no track 'blue'",
    )
    code, _, err = await splitgate("weights", "--token", "wrong-token", "get", "chat")
    assert code == 1 and "401" in err
    code, out, _ = await splitgate("weights", "get", "chat")
    assert code == 0 and "generation 2" in out and "replicas: 3 live" in out


@pytest.mark.usefixtures("session_closer")
async def test_admin_paths_are_not_served_on_the_proxy_port(fleet: Fleet) -> None:
    for path in ("/v1/routes", "/v1/routes/chat/weights", "/v1/audit", "/openapi.json"):
        async with fleet.session.get(fleet.proxies[0].url + path, headers=AUTH) as r:
            assert r.status == 404, path
            assert "routes" not in (await r.text())


@pytest.mark.usefixtures("session_closer")
async def test_two_replicas_windows_merge_into_fleet_totals_and_percentiles(fleet: Fleet) -> None:
    generation = await fleet.set_canary(0)
    await eventually(lambda: fleet.all_acked(generation))
    a, b = fleet.proxies[0], fleet.proxies[1]

    async def send(proxy: PlaneProcess, n: int, fake: str = "") -> None:
        for i in range(n):
            headers = {"x-user-id": f"m{i}", **({"X-Fake": fake} if fake else {})}
            async with fleet.session.get(f"{proxy.url}/v1/models", headers=headers) as r:
                await r.read()

    await send(a, 40)
    await send(b, 10, "ttfb=0.3")
    await send(b, 5, "status=429")

    async def stable() -> dict[str, Any]:
        answer = await fleet.admin("GET", "/v1/routes/chat/metrics?window=1m")
        tracks: dict[str, dict[str, Any]] = {t["track"]: t for t in answer["tracks"]}
        return tracks.get("stable", {"requests": 0})

    async def all_flushed() -> bool:
        return bool((await stable())["requests"] == 55)

    await eventually(all_flushed)
    counts = await stable()
    assert counts["errors_by_class"]["upstream_429"] == 5
    assert counts["error_rate"] == pytest.approx(5 / 55)
    assert counts["latency_ms"]["p50"] < 300
    assert counts["latency_ms"]["p95"] >= 300  # 10 of 55 waited 0.3 s at the upstream
    assert counts["version"] == "v1.0.0" and counts["weight"] == 100
    ratio = (await fleet.admin("GET", "/v1/routes/chat/metrics?window=1m"))["sample_ratio"]
    assert ratio["requests"] == 55 and ratio["mismatch"] is False
    status = (await fleet.admin("GET", "/v1/routes/chat"))["sample_ratio"]
    assert status["requests"] == 55 and status["mismatch"] is False
