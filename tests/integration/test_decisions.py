"""The routing decision log end to end: a proxy process keeps the decision, its flusher writes
it to a real Redis, and the control plane process finds it by the id the client got."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import aiohttp

from config.stickiness import bucket, salt_prefix
from control import cli
from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import RunPlane

TOKEN = "decisions-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SALT = "chat-salt"


async def test_a_requests_decision_is_found_by_the_id_in_its_answer(
    tmp_path: Path, start_upstream: StartUpstream, run_plane: RunPlane, redis_server: RedisServer
) -> None:
    _, stable = await start_upstream("v1.0.0")
    _, canary = await start_upstream("v1.1.0")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""proxy:
  decision_log: {{sample_percent: 100}}
routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    salt: {SALT}
    stickiness: [header:x-user-id]
    tracks:
      - {{name: stable, version: v1.0.0, upstreams: ["{stable}"], weight: 50}}
      - {{name: canary, version: v1.1.0, upstreams: ["{canary}"], weight: 50}}
""",
        encoding="utf-8",
    )
    env = {
        "SPLITGATE_ADMIN_TOKEN": TOKEN,
        "SPLITGATE_REDIS_URL": redis_server.url,
        "SPLITGATE_SIGNING_KEY": "decisions-signing-key",
    }
    control = await run_plane("control", "--config", str(routes), env=env)
    proxy = await run_plane("proxy", "--config", str(routes), env=env)
    async with aiohttp.ClientSession() as session:

        async def lookup(request_id: str) -> dict[str, Any]:
            async with asyncio.timeout(15):
                while True:
                    async with session.get(
                        f"{control.url}/v1/requests/{request_id}", headers=AUTH
                    ) as r:
                        assert r.status in (200, 404), await r.text()
                        if r.status == 200:
                            body: dict[str, Any] = await r.json()
                            if body["logged"]:
                                return body
                    await asyncio.sleep(0.1)  # the flusher writes once a second

        async with session.get(f"{proxy.url}/v1/models", headers={"x-user-id": "alice"}) as r:
            assert r.status == 200
            own_id = r.headers["X-Request-Id"]
            track = r.headers["X-Splitgate-Track"]
            generation = int(r.headers["X-Splitgate-Generation"])
        found = await lookup(own_id)
        assert (found["route"], found["track"], found["signed"]) == ("chat", track, True)
        assert found["rule"] == "weights" and found["generation"] == generation
        assert found["bucket"] == bucket(salt_prefix(SALT), "alice")

        headers = {"x-user-id": "bob", "X-Request-Id": "client-order-17"}
        async with session.get(f"{proxy.url}/v1/models", headers=headers) as r:
            assert r.status == 200 and r.headers["X-Request-Id"] == "client-order-17"
            feedback_id = r.headers["X-Splitgate-Feedback-Id"]
            track = r.headers["X-Splitgate-Track"]
        by_signed = await lookup(feedback_id)
        by_client = await lookup("client-order-17")
        assert by_signed["signed"] is True and by_client["signed"] is False
        for answer in (by_signed, by_client):
            assert (answer["track"], answer["rule"], answer["at"]) == (
                track,
                "weights",
                by_signed["at"],
            )

        async with session.get(f"{control.url}/v1/requests/not-an-id-we-know", headers=AUTH) as r:
            assert r.status == 404 and (await r.json())["error"]["param"] == "id"

    # The same lookup from the command line, as an operator would run it.
    cli_env = {"SPLITGATE_ADMIN_URL": control.url, "SPLITGATE_ADMIN_TOKEN": TOKEN}
    code, out = await asyncio.to_thread(run_cli, ["request", own_id], cli_env)
    assert code == 0
    assert out.splitlines()[:2] == [
        f"chat → {found['track']} ({found['version']})",
        f"rule weights, bucket {found['bucket']}, routing generation {generation}",
    ]
    code, _ = await asyncio.to_thread(run_cli, ["request", "not-an-id-we-know"], cli_env)
    assert code == 1  # refused by the API, naming the id


def run_cli(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(argv, env=env)
    return code, out.getvalue()
