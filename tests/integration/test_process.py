"""The proxy as a user runs it: a real process started from the command line.

Start-up errors, inline flags, and the SIGTERM drain (open streams finish, new connections
are refused) are only visible at this level.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartUpstream
from tests.integration.conftest import PlaneProcess, RunProxy

STREAM = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}


def routes_file(tmp_path: Path, stable: str, canary: str, extra: str = "") -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(
        extra
        + f"""routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    stickiness: [header:x-user-id, header:x-session-id, client_ip]
    tracks:
      - {{name: stable, version: v1.0.0, upstreams: ["{stable}"], weight: 90}}
      - {{name: canary, version: v1.1.0, upstreams: ["{canary}"], weight: 10}}
""",
        encoding="utf-8",
    )
    return path


async def test_config_mistake_stops_start_up_naming_file_line_and_field(tmp_path: Path) -> None:
    path = routes_file(tmp_path, "http://127.0.0.1:1", "http://127.0.0.1:2").read_text(
        encoding="utf-8"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.replace("weight: 10}", "weight: 20}"), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        "--config",
        str(bad),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert f"{bad}:5: routes[0].tracks: weights must add up to 100 (got 110" in err.decode()


async def test_splitgate_command_serves_a_config_file(
    tmp_path: Path, start_upstream: StartUpstream, run_proxy: RunProxy
) -> None:
    stable, stable_url = await start_upstream("v1.0.0")
    canary, canary_url = await start_upstream("v1.1.0")
    proxy: PlaneProcess = await run_proxy(
        "--config", str(routes_file(tmp_path, stable_url, canary_url))
    )
    tracks = set()
    async with aiohttp.ClientSession() as session:
        for i in range(60):
            async with session.get(
                f"{proxy.url}/v1/models", headers={"x-user-id": f"user{i}"}
            ) as r:
                assert r.status == 200
                tracks.add(r.headers["X-Splitgate-Track"])
    assert tracks == {"stable", "canary"}
    assert len(stable.received) + len(canary.received) == 60


async def test_inline_upstream_flags(start_upstream: StartUpstream, run_proxy: RunProxy) -> None:
    blue, blue_url = await start_upstream("blue")
    green, green_url = await start_upstream("green")
    proxy: PlaneProcess = await run_proxy(
        "--upstream", f"blue={blue_url}", "--upstream", f"green={green_url}", "--weight", "green=10"
    )
    async with aiohttp.ClientSession() as session:
        for i in range(200):
            async with session.get(f"{proxy.url}/v1/models", headers={"x-user-id": f"u{i}"}) as r:
                assert r.headers["X-Splitgate-Track"] in ("blue", "green")
    assert 5 <= len(green.received) <= 40
    assert len(blue.received) + len(green.received) == 200


async def test_sigterm_lets_open_streams_finish_and_refuses_new_connections(
    tmp_path: Path, start_upstream: StartUpstream, run_proxy: RunProxy
) -> None:
    _, url = await start_upstream(chunks=10, tps=10)
    proxy: PlaneProcess = await run_proxy("--config", str(routes_file(tmp_path, url, url)))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{proxy.url}/v1/chat/completions", json=STREAM) as r:
            first = await r.content.readuntil(b"\n\n")
            proxy.process.send_signal(signal.SIGTERM)
            rest = await r.content.read()
        assert first.startswith(b"data: ")
        assert rest.endswith(b"data: [DONE]\n\n")
        assert await asyncio.wait_for(proxy.process.wait(), 30) == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{proxy.url}/healthz"):
                pass
    assert proxy.process.stdout is not None
    log = (await proxy.process.stdout.read()).decode()
    assert "draining" in log


async def test_unknown_command_and_help() -> None:
    for args, code in ((["nope"], 2), (["--help"], 0), (["proxy", "--help"], 0)):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "splitgate",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == code, (args, out, err)


SMUGGLE = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
)


@pytest.mark.parametrize("parser", ["c", "python"])
async def test_smuggling_is_refused_by_both_http_parsers(
    parser: str, tmp_path: Path, start_upstream: StartUpstream, run_proxy: RunProxy
) -> None:
    fake, url = await start_upstream()
    env = {"AIOHTTP_NO_EXTENSIONS": "1"} if parser == "python" else {}
    proxy = await run_proxy("--config", str(routes_file(tmp_path, url, url)), env=env)
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(SMUGGLE)
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0]
    assert answer.count(b"HTTP/1.") == 1  # no second response: nothing was smuggled through
    assert fake.received == []
