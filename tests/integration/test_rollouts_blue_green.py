"""A whole blue-green deployment with real processes: smoke tests that fail keep users off the
new colour, the validation phase sends it the testers' requests only, the switch moves
everyone, and an abort switches back at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import RunPlane
from tests.integration.rollout_stack import AUTH, rollout, settled, stack, start_rollout


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
