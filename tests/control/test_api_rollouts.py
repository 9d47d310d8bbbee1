"""Rollouts through the admin API against a real Redis: plans refused with the field at fault
and its line, commands refused naming the rollout's state, the checklist, verdicts and the
record as the OpenAPI document describes them, and rollouts refused while a third track
carries traffic or while the candidate's track serves most users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from config.keys import Keys
from control.app import ControlApp
from control.openapi import OPENAPI
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import AUTH, SEED, TOKEN


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield app
    await app.close()


CANARY = """canary_deployment:
  route: chat
  candidate: {track: canary, version: v9, upstreams: ["http://127.0.0.1:9"]}
  phases: [{name: all, traffic: 100}]
  checklist: {required: [tests_passed], recommended: [load_test]}
"""


async def test_rollout_plans_and_commands_refused_with_the_field_and_the_state(
    client: TestClient[Any, Any],
) -> None:
    bad = CANARY.replace("traffic: 100", "traffic: 140")
    r = await client.post("/v1/rollouts", data=bad, headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["errors"]
    assert problem["field"] == "canary_deployment.phases[0].traffic"
    assert problem["reason"].startswith("line 4: ")
    ab = "ab_testing: {route: chat, split: {stable: 50, nope: 50}, duration: 1h}\n"
    r = await client.post("/v1/rollouts", data=ab, headers=AUTH)
    assert r.status == 422
    assert (await r.json())["errors"] == [
        {"field": "ab_testing.split.nope", "reason": "route 'chat' has no track 'nope'"}
    ]
    assert (await client.get("/v1/rollouts", headers=AUTH)).status == 200
    assert (await (await client.get("/v1/rollouts", headers=AUTH)).json())["rollouts"] == []

    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 201, await r.text()
    rid = (await r.json())["id"]
    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 409 and rid in (await r.json())["error"]["message"]
    r = await client.post(f"/v1/rollouts/{rid}/approve", headers=AUTH)
    assert r.status == 409 and "pending" in (await r.json())["error"]["message"]
    r = await client.post(f"/v1/rollouts/{rid}/launch", headers=AUTH)
    assert r.status == 404
    r = await client.post(f"/v1/rollouts/{rid}/checks/changelog", headers=AUTH)
    assert r.status == 404
    assert "tests_passed, load_test" in (await r.json())["errors"][0]["reason"]
    r = await client.post(f"/v1/rollouts/{rid}/checks/tests_passed", data="{", headers=AUTH)
    assert r.status == 400
    r = await client.post(
        f"/v1/rollouts/{rid}/checks/tests_passed",
        json={"note": "CI run 7"},
        headers={**AUTH, "X-Splitgate-Actor": "ci-bot"},
    )
    assert r.status == 200
    done = (await r.json())["checklist"]["required"]["tests_passed"]
    assert (done["by"], done["note"]) == ("ci-bot", "CI run 7")
    r = await client.get(f"/v1/rollouts/{rid}/verdicts?limit=0", headers=AUTH)
    assert r.status == 400
    r = await client.get(f"/v1/rollouts/{rid}/verdicts", headers=AUTH)
    assert r.status == 200 and (await r.json())["looks"] == []
    r = await client.get(f"/v1/rollouts/{rid}", headers=AUTH)
    shown = await r.json()
    conforms(shown, "/v1/rollouts/{id}")
    assert shown["weights"] == {"stable": 95, "canary": 5}
    assert shown["warnings"] == ["recommended checklist item 'load_test' is not confirmed"]
    assert (await client.post(f"/v1/rollouts/{rid}/abort", headers=AUTH)).status == 200
    r = await client.get("/v1/rollouts", headers=AUTH)
    conforms(await r.json(), "/v1/rollouts")
    r = await client.post(f"/v1/rollouts/{rid}/checks/tests_passed", headers=AUTH)
    assert r.status == 409 and "aborted" in (await r.json())["error"]["message"]


async def test_a_rollout_is_refused_while_a_third_track_carries_traffic(
    client: TestClient[Any, Any],
) -> None:
    track = {"version": "v3", "upstreams": ["http://127.0.0.1:9003"], "weight": 0}
    r = await client.put("/v1/routes/chat/tracks/other", json=track, headers=AUTH)
    assert r.status == 200, await r.text()
    weights = {"weights": {"stable": 90, "canary": 5, "other": 5}}
    r = await client.put("/v1/routes/chat/weights", json=weights, headers=AUTH)
    assert r.status == 200, await r.text()
    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["errors"]
    assert problem["field"] == "route" and "'other' of route 'chat' has 5%" in problem["reason"]
    assert (await (await client.get("/v1/rollouts", headers=AUTH)).json())["rollouts"] == []


async def test_a_rollout_that_would_hand_production_to_the_older_baseline_is_refused(
    client: TestClient[Any, Any],
) -> None:
    # The candidate's track runs what most users get (a blue-green switch, or a promotion kept
    # on the candidate): registering a new version there would move them to the baseline.
    weights = {"weights": {"stable": 10, "canary": 90}}
    r = await client.put("/v1/routes/chat/weights", json=weights, headers=AUTH)
    assert r.status == 200, await r.text()
    r = await client.post("/v1/rollouts", data=CANARY, headers=AUTH)
    assert r.status == 422, await r.text()
    [problem] = (await r.json())["errors"]
    assert problem["field"] == "canary_deployment.candidate.track"
    assert "track 'canary' serves 90% of route 'chat' (v2)" in problem["reason"]
    assert (await (await client.get("/v1/rollouts", headers=AUTH)).json())["rollouts"] == []


def conforms(body: Any, path: str) -> None:
    """``body`` is what the OpenAPI document says GET ``path`` answers with 200."""
    schema = OPENAPI["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    validator = Draft202012Validator({**schema["schema"], "components": OPENAPI["components"]})
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == []
