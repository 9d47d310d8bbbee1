"""The load test's admin calls against a real control plane (and Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from config.keys import Keys
from config.schema import RoutingDocument
from control.app import ControlApp
from control.redis_client import connect
from loadtests.admin import AdminClient, AdminError
from splitgate.redis_server import RedisServer
from tests.conftest import StartApp, refused_url

TOKEN = "loadtest-admin-token-0123456789"
SEED = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "tracks": [
                    {
                        "name": "stable",
                        "version": "v1",
                        "upstreams": ["http://127.0.0.1:9001"],
                        "weight": 90,
                    },
                    {
                        "name": "canary",
                        "version": "v2",
                        "upstreams": ["http://127.0.0.1:9002"],
                        "weight": 10,
                    },
                ],
            }
        ]
    }
)
PLAN = """canary_deployment:
  route: chat
  candidate: {track: canary, version: v2, upstreams: ["http://127.0.0.1:9002"]}
  phases:
    - {name: "10%", traffic: 10, duration: 1h}
    - {name: "100%", traffic: 100}
"""


@pytest.fixture
async def admin_url(redis_server: RedisServer, start_app: StartApp) -> AsyncIterator[str]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield await start_app(app.web_app())
    await app.close()


async def test_weights_and_a_rollout(admin_url: str) -> None:
    client = AdminClient(admin_url, TOKEN)
    generation, weights = await asyncio.to_thread(client.weights, "chat")
    assert generation >= 1
    assert weights == {"stable": 90.0, "canary": 10.0}
    started = await asyncio.to_thread(client.start_rollout, PLAN)
    again = await asyncio.to_thread(client.rollout, started["id"])
    assert again["id"] == started["id"] and again["route"] == "chat"
    with pytest.raises(AdminError, match="HTTP 409: route 'chat' already has an active rollout"):
        await asyncio.to_thread(client.start_rollout, PLAN)


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda c: c.start_rollout("canary_deployment: {route: chat}"), "HTTP 422: .*candidate"),
        (lambda c: c.weights("nope"), "HTTP 404"),
        (lambda c: AdminClient(c._base, "wrong-token").weights("chat"), "HTTP 401"),
    ],
    ids=["bad plan", "unknown route", "bad token"],
)
async def test_refusals_name_the_reason(admin_url: str, call: object, problem: str) -> None:
    client = AdminClient(admin_url, TOKEN)
    with pytest.raises(AdminError, match=problem):
        await asyncio.to_thread(call, client)  # type: ignore[arg-type]


async def test_unreachable() -> None:
    client = AdminClient(refused_url(), TOKEN, timeout_s=5)
    with pytest.raises(AdminError, match="GET /v1/routes/chat: "):
        await asyncio.to_thread(client.weights, "chat")
