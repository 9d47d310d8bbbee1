"""``--workers N``: one supervisor process, N spawned workers sharing the port (SO_REUSEPORT).

Workers are found as the supervisor's children in ``/proc``, and by their own ack keys in
Redis. A scrape reaches one worker and answers for all (``proxy.worker_metrics``): one
``splitgate_worker_info`` series per live worker, the counters summed over them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import signal
import socket
import sys
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from config.keys import Keys
from proxy.supervisor import RestartBudget, StartWorker, Supervisor
from splitgate.redis_server import RedisServer, free_port
from tests.conftest import StartUpstream
from tests.integration.conftest import PlaneProcess, RunProxy

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds workers in /proc; SO_REUSEPORT spreading"
)

WORKER_INFO = re.compile(r'^splitgate_worker_info\{worker="(\d+)",workers="\d+"\} 1\.0$', re.M)
REQUESTS = re.compile(r"^splitgate_requests_total\{[^}]*\} (\d+)\.0$", re.M)


def workers_of(parent: int) -> set[int]:
    """Live worker processes of ``parent`` (the spawned ones, not multiprocessing's tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces or parentheses: the fields start after the last ')'.
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == parent and state != "Z" and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def logged(proxy: PlaneProcess, text: str) -> str:
    """Read the process's output up to the first line holding ``text`` (30 s at most)."""
    stream = proxy.process.stdout
    assert stream is not None
    async with asyncio.timeout(30):
        while line := (await stream.readline()).decode():
            if text in line:
                return line
    raise AssertionError(f"{text!r} never logged; exit code {proxy.process.returncode}")


async def scrape(url: str) -> tuple[set[str], int]:
    """(workers listed, requests counted) of one scrape, on a new connection."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}/metrics") as r,
    ):
        assert r.status == 200
        text = await r.text()
    return set(WORKER_INFO.findall(text)), sum(int(n) for n in REQUESTS.findall(text))


async def counted(url: str, total: int) -> None:
    """Scrape until the sum reaches ``total`` (each worker's snapshot is at most 1 s old)."""
    async with asyncio.timeout(30):
        while (await scrape(url))[1] < total:  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.2)


async def send(url: str, count: int) -> None:
    """``count`` requests, each on a new connection so the kernel spreads them."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(count):
            async with session.get(f"{url}/v1/models", headers={"x-user-id": f"u{i}"}) as r:
                assert r.status == 200, await r.text()


async def test_two_workers_share_the_port_and_each_acks_in_redis(
    start_upstream: StartUpstream, run_proxy: RunProxy, redis_server: RedisServer
) -> None:
    upstream, upstream_url = await start_upstream()
    proxy = await run_proxy(
        "--workers",
        "2",
        "--upstream",
        f"a={upstream_url}",
        env={"SPLITGATE_REDIS_URL": redis_server.url, "SPLITGATE_INSTANCE": "pod-7"},
    )
    await logged(proxy, "2 workers serving")
    keys = Keys()
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        acks: list[str] = []
        async with asyncio.timeout(30):
            while len(acks) < 2:
                acks = sorted([k async for k in redis.scan_iter(match=keys.ack_pattern)])
                await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    assert [keys.instance_of(k) for k in acks] == ["pod-7-w1", "pod-7-w2"]

    await send(proxy.url, 200)
    assert len(upstream.received) == 200
    await counted(proxy.url, 200)
    # Whichever worker answers, the scrape lists both and counts every request once.
    for _ in range(20):
        assert await scrape(proxy.url) == ({"1", "2"}, 200)


async def test_one_worker_is_the_single_process_as_before(
    start_upstream: StartUpstream, run_proxy: RunProxy
) -> None:
    _, upstream_url = await start_upstream()
    proxy = await run_proxy("--workers", "1", "--upstream", f"a={upstream_url}")
    await send(proxy.url, 5)
    assert workers_of(proxy.process.pid) == set()
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.url}/metrics") as r:
        assert "splitgate_worker_info" not in await r.text()


async def test_sigterm_to_the_supervisor_drains_and_ends_every_worker(
    start_upstream: StartUpstream, run_proxy: RunProxy
) -> None:
    _, upstream_url = await start_upstream()
    proxy = await run_proxy("--workers", "2", "--upstream", f"a={upstream_url}")
    await logged(proxy, "2 workers serving")
    workers = workers_of(proxy.process.pid)
    assert len(workers) == 2

    proxy.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proxy.process.wait(), 60) == 0
    assert not workers & workers_of(proxy.process.pid)
    assert not any(map(exists, workers))  # reaped by the supervisor, not left behind
    assert proxy.process.stdout is not None
    log = (await proxy.process.stdout.read()).decode()
    assert log.count("draining") == 2
    with pytest.raises(aiohttp.ClientConnectionError):
        await send(proxy.url, 1)


async def test_a_killed_worker_is_restarted_and_serving_continues(
    start_upstream: StartUpstream, run_proxy: RunProxy
) -> None:
    _, upstream_url = await start_upstream()
    proxy = await run_proxy("--workers", "2", "--upstream", f"a={upstream_url}")
    await logged(proxy, "2 workers serving")
    await send(proxy.url, 50)
    await counted(proxy.url, 50)  # in both workers' snapshots before the kill
    parent = proxy.process.pid
    before = workers_of(parent)
    victim = min(before)

    os.kill(victim, signal.SIGKILL)
    warning = await logged(proxy, f"(pid {victim}) was killed by SIGKILL: restarting it")
    again = await logged(proxy, "listening again")
    assert again.split("worker ")[1][0] == warning.split("worker ")[1][0]
    after = workers_of(parent)
    assert len(after) == 2
    assert victim not in after
    assert before - {victim} < after

    await send(proxy.url, 50)
    # The dead worker's counts stay in the sums (they never go back); its gauges go.
    await counted(proxy.url, 100)
    assert await scrape(proxy.url) == ({"1", "2"}, 100)


async def test_bad_worker_count_is_a_usage_error() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "splitgate",
        "proxy",
        "--upstream",
        "a=http://127.0.0.1:1",
        "--workers",
        "65",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "splitgate proxy: --workers: '65': must be between 1 and 64" in err.decode()


async def test_a_port_in_use_stops_start_up_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "--upstream",
            "a=http://127.0.0.1:1",
            "--workers",
            "2",
            "--listen",
            f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err.decode()


# The supervisor with stand-in workers: spawned callables that misbehave on purpose, taken
# from the standard library so that the children import nothing of ours (they start faster).


def stand_ins(behave: str, started: list[int]) -> StartWorker:
    context = multiprocessing.get_context("spawn")

    def start(index: int) -> tuple[BaseProcess, Connection]:
        link, end = context.Pipe()
        if behave == "exit at once":
            process = context.Process(target=os._exit, args=(3,), daemon=True)
        elif behave == "hang":
            process = context.Process(target=signal.pause, daemon=True)
        else:  # say "listening", then end
            process = context.Process(target=end.send, args=(0,), daemon=True)
        process.start()
        end.close()
        started.append(index)
        return process, link

    return start


def test_a_worker_that_cannot_start_fails_the_start() -> None:
    started: list[int] = []
    supervisor = Supervisor(2, stand_ins("exit at once", started), listen=f":{free_port()}")
    assert supervisor.run() == 1
    assert sorted(started) == [1, 2]  # no restart before the first start succeeded


def test_a_worker_that_never_listens_is_killed_and_fails_the_start() -> None:
    started: list[int] = []
    supervisor = Supervisor(
        1, stand_ins("hang", started), listen=f":{free_port()}", start_timeout_s=0.5
    )
    assert supervisor.run() == 1
    assert started == [1]


def test_restarts_are_bounded_then_every_worker_stops() -> None:
    started: list[int] = []
    supervisor = Supervisor(
        1,
        stand_ins("listen, then exit", started),
        listen=f":{free_port()}",
        budget=RestartBudget(limit=3, window_s=3600),
    )
    assert supervisor.run() == 1
    assert started == [1, 1, 1, 1]  # the first start and 3 restarts


async def test_the_operations_port_answers_for_every_worker_and_the_client_port_hides_metrics(
    start_upstream: StartUpstream, run_proxy: RunProxy
) -> None:
    _, upstream_url = await start_upstream()
    ops = f"127.0.0.1:{free_port()}"
    proxy = await run_proxy(
        "--workers", "2", "--ops-listen", ops, "--upstream", f"a={upstream_url}"
    )
    await logged(proxy, "2 workers serving")
    await send(proxy.url, 30)
    await counted(f"http://{ops}", 30)
    assert await scrape(f"http://{ops}") == ({"1", "2"}, 30)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.url}/metrics") as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "not_found"
        for path in ("/healthz", "/readyz"):
            for base in (proxy.url, f"http://{ops}"):
                async with session.get(f"{base}{path}") as r:
                    assert r.status == 200, (base, path)
        async with session.get(f"http://{ops}/v1/models") as r:
            assert r.status == 404  # nothing is routed on the operations port
