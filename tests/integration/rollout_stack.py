"""The stack the rollout tests run (a control plane and a proxy as processes, Redis, a stable
and a canary fake backend) and the admin API calls they make: start a rollout, read its
record, wait until it has settled."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import INTERNAL, PlaneProcess, RunPlane

TOKEN = "rollout-admin-token-0123456789"
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
