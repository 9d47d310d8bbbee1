"""A feature flag end to end: made through the admin API of a control plane process, evaluated
by two proxy processes that agree with each other and with explain, counted per flag."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from config.keys import Keys
from config.metrics import merge_flag_windows
from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import PlaneProcess, RunPlane, run_cli
from tests.integration.test_fleet import eventually

TOKEN = "flags-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLAG = {
    "route": "chat",
    "track": "v2",
    "rollout_percentage": 50,
    "conditions": [{"type": "user_segment", "values": ["premium", "enterprise"]}],
    "override": {"enabled_for": ["user_123"], "disabled_for": ["user_789"]},
    "reason": "premium beta",
}
REQUESTS = [
    *({"x-user-id": f"u{i}", "x-user-segment": "premium"} for i in range(40)),
    *({"x-user-id": f"f{i}", "x-user-segment": "free"} for i in range(10)),
    {"x-user-id": "user_123"},
    {"x-user-id": "user_789", "x-user-segment": "premium"},
]


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

    async def all_acked(self, generation: int) -> bool:
        replicas = (await self.admin("GET", "/v1/routes"))["replicas"]
        return len(replicas) == 2 and all(a["generation"] >= generation for a in replicas.values())

    async def answer(self, proxy: PlaneProcess, headers: dict[str, str]) -> tuple[str, str | None]:
        async with self.session.get(f"{proxy.url}/v1/models", headers=headers) as r:
            assert r.status == 200
            await r.read()
            return r.headers["X-Splitgate-Track"], r.headers.get("X-Splitgate-Flag")


@pytest.fixture
async def fleet(
    tmp_path: Path, start_upstream: StartUpstream, run_plane: RunPlane, redis_server: RedisServer
) -> AsyncIterator[Fleet]:
    _, v1 = await start_upstream("v1.0.0")
    _, v2 = await start_upstream("v2.0.0")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    stickiness: [header:x-user-id, client_ip]
    baseline: v1
    tracks:
      - {{name: v1, version: v1.0.0, upstreams: ["{v1}"], weight: 100}}
      - {{name: v2, version: v2.0.0, upstreams: ["{v2}"], weight: 0}}
""",
        encoding="utf-8",
    )
    env = {"SPLITGATE_ADMIN_TOKEN": TOKEN, "SPLITGATE_REDIS_URL": redis_server.url}
    control = await run_plane("control", "--config", str(routes), env=env)
    proxies = [
        await run_plane(
            "proxy", "--config", str(routes), env={**env, "SPLITGATE_INSTANCE": f"proxy-{i}"}
        )
        for i in range(2)
    ]
    async with aiohttp.ClientSession() as session:
        yield Fleet(control, proxies, session)


async def released_per_flag(redis_server: RedisServer) -> int:
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        keys = [k async for k in redis.scan_iter(match=Keys().metrics_window("chat", 0)[:-1] + "*")]
        hashes = [{str(f): str(v) for f, v in (await redis.hgetall(k)).items()} for k in keys]
    finally:
        await redis.aclose()
    merged = merge_flag_windows(hashes)
    return sum(w.requests for (flag, _, _), w in merged.items() if flag == "new_prompt_v2")


async def test_both_replicas_give_each_user_the_answer_explain_gives(
    fleet: Fleet, redis_server: RedisServer
) -> None:
    await eventually(lambda: fleet.all_acked(1))
    written = await fleet.admin("PUT", "/v1/flags/new_prompt_v2", FLAG)
    await eventually(lambda: fleet.all_acked(written["generation"]))

    seen: dict[str, tuple[str, str | None]] = {}
    for headers in REQUESTS:
        first, second = [await fleet.answer(proxy, headers) for proxy in fleet.proxies]
        assert first == second, headers  # the same user gets the same answer on both
        why = await fleet.admin("POST", "/v1/flags/explain", {"route": "chat", "headers": headers})
        assert (why["track"], why["flag"]) == first, (headers, why["reason"])
        seen[headers["x-user-id"]] = first
    assert seen["user_123"] == ("v2", "new_prompt_v2")
    assert seen["user_789"] == ("v1", None)
    assert {seen[f"f{i}"] for i in range(10)} == {("v1", None)}
    premium = [seen[f"u{i}"] for i in range(40)]
    assert ("v2", "new_prompt_v2") in premium and ("v1", None) in premium

    # Both replicas flush the released requests into the per-flag window fields too.
    released = 2 * sum(1 for answer in seen.values() if answer[1] == "new_prompt_v2")

    async def counted() -> bool:
        return await released_per_flag(redis_server) == released

    await eventually(counted)


async def test_the_flags_command_line(fleet: Fleet, tmp_path: Path) -> None:
    async def splitgate(*args: str) -> tuple[int, str, str]:
        return await run_cli("flags", *args, admin_url=fleet.control.url, token=TOKEN, within_s=30)

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "route: chat\ntrack: v2\nconditions:\n  - {type: region, operator: near, values: [jp]}\n",
        encoding="utf-8",
    )
    code, _, err = await splitgate("set", "regional", str(bad))
    assert code == 1
    assert f"422 {bad}: flag.conditions[0].operator: line 4: unknown operator 'near'" in err
    good = tmp_path / "good.yaml"
    good.write_text(
        bad.read_text(encoding="utf-8").replace("near", "in")
        + "gradual_rollout:\n  schedule:\n    - {date: '2099-01-01', percentage: 5}\n",
        encoding="utf-8",
    )
    code, out, _ = await splitgate("set", "regional", str(good), "--reason", "jp first")
    assert (code, out.strip()) == (0, "flag regional set at generation 2")
    code, out, _ = await splitgate("list")
    assert code == 0 and "regional: chat → v2  100 % of conditions" in out
    code, out, _ = await splitgate(
        "explain", "--route", "chat", "--header", "x-user-id=user_123", "--header", "x-region=jp"
    )
    assert code == 0, out
    assert out.splitlines()[0] == "track v2 (flag regional, rule rollout)"
    code, out, _ = await splitgate("pause", "regional", "--reason", "hold")
    assert (code, out.strip()) == (0, "schedule of regional paused at generation 3")
    code, out, _ = await splitgate("schedule", "regional")
    assert code == 0 and "0 of 1 steps applied (times in UTC)  PAUSED" in out
    assert "1. 2099-01-01" in out and "scheduled" in out
    code, out, _ = await splitgate("get", "regional")
    assert code == 0 and "paused: true" in out and "rollout_percentage: 100.0" in out
    code, _, err = await splitgate("delete", "ghost")
    assert (code, err.strip()) == (1, "splitgate flags: 404 flag: no feature flag named 'ghost'")
    code, _, err = await splitgate("set", "x", str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml: No such file or directory" in err
