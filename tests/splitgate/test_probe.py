"""``splitgate probe``, the image's health check: ready when a plane here answers /readyz."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from splitgate.probe import main, targets


def test_the_addresses_come_from_the_environment_on_loopback() -> None:
    env = {"SPLITGATE_OPS_LISTEN": "0.0.0.0:8089", "SPLITGATE_LISTEN": "0.0.0.0:8080"}
    assert targets(env) == ["http://127.0.0.1:8089/readyz", "http://127.0.0.1:8081/readyz"]
    assert targets({"SPLITGATE_LISTEN": "[::]:9000"})[0] == "http://[::1]:9000/readyz"


async def serve(status: int) -> TestServer:
    async def readyz(request: web.Request) -> web.Response:
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.mark.parametrize("status, code", [(200, 0), (503, 1)])
async def test_ready_exits_0_and_not_ready_exits_1_saying_why(
    status: int, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await serve(status)
    try:
        env = {
            "SPLITGATE_OPS_LISTEN": f"127.0.0.1:{server.port}",
            "SPLITGATE_CONTROL_LISTEN": "127.0.0.1:1",
        }
        assert await _run(env) == code
    finally:
        await server.close()
    if code:
        assert "status 503" in capsys.readouterr().out


async def _run(env: dict[str, str]) -> int:
    return await asyncio.to_thread(main, [], env)


def test_a_bad_address_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], {"SPLITGATE_CONTROL_LISTEN": "nowhere"}) == 2
    assert capsys.readouterr().err.count("\n") == 1
