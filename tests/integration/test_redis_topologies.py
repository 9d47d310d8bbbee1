"""Sentinel and Cluster URLs: the control plane writes and a proxy follows through each."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.exceptions import RedisError

from config.decisions import DecisionLogSettings, slot_start
from config.keys import Keys
from config.metrics import field_name
from config.redis_url import with_settings
from control.app import ControlApp
from control.edits import set_weights
from control.redis_client import connect
from control.store import Change
from proxy import redis_client as proxy_redis
from proxy.app import Follow
from proxy.decision_writer import DecisionWriter
from proxy.decisions import DecisionLog
from proxy.flusher import MetricsFlusher
from proxy.stats import StatsRegistry
from splitgate.redis_server import RedisServer, find_binary, free_port
from tests.conftest import StartProxy, StartUpstream, two_track_config
from tests.proxy.decision_table import finished
from tests.proxy.decision_table import route as decision_route

TOKEN = "topology-admin-token-0123456789"
SENTINEL_PASSWORD = "sentinel-secret/with&odd chars"


def wait_port(
    port: int, process: subprocess.Popen[bytes], timeout: float = 10.0, password: str | None = None
) -> None:
    deadline = time.monotonic() + timeout
    auth = ["--no-auth-warning", "-a", password] if password else []
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        done = subprocess.run(
            ["redis-cli", "-p", str(port), *auth, "ping"], capture_output=True, check=False
        )
        if done.stdout.strip() == b"PONG":
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on port {port}")


def start_sentinel(redis_server: RedisServer, tmp_path: Path, extra: str = "") -> Iterator[str]:
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n{extra}"
        f"sentinel monitor mymaster 127.0.0.1 {redis_server.port} 1\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [find_binary(), str(conf), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, process, password=SENTINEL_PASSWORD if extra else None)
        yield f"redis+sentinel://127.0.0.1:{port}/mymaster/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sentinel_url(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    yield from start_sentinel(redis_server, tmp_path)


@pytest.fixture
def guarded_sentinel_url(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A Sentinel with its own password (``requirepass`` in sentinel mode)."""
    yield from start_sentinel(redis_server, tmp_path, f'requirepass "{SENTINEL_PASSWORD}"\n')


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10_000 >= 65_536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is needed to form a cluster")
    ports = [cluster_port() for _ in range(3)]
    processes = []
    try:
        for port in ports:
            node_dir = tmp_path / str(port)
            node_dir.mkdir()
            processes.append(
                subprocess.Popen(
                    [
                        find_binary(),
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--dir",
                        str(node_dir),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port, process in zip(ports, processes, strict=True):
            wait_port(port, process)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = subprocess.run(
                ["redis-cli", "-p", str(ports[0]), "cluster", "info"],
                capture_output=True,
                check=False,
            )
            if b"cluster_state:ok" in info.stdout:
                break
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


async def follow_through(url: str, start_upstream: StartUpstream, start_proxy: StartProxy) -> None:
    _, stable = await start_upstream("v1")
    _, canary = await start_upstream("v2")
    config = two_track_config(stable, canary, canary_weight=5)
    control = ControlApp(connect(url), Keys(), config.document(), TOKEN)
    await control.start()
    try:
        proxy = await start_proxy(config, follow=Follow(url, "topology", poll_s=0.2))
        current = await control.store.read()
        assert current is not None and current.generation == 1
        new = set_weights(current.routing(), "chat", {"stable": 50, "canary": 50})
        written = await control.store.write(
            new, current.generation, Change("t", "", "set_weights", "x")
        )
        async with aiohttp.ClientSession() as session, asyncio.timeout(15):
            while True:
                async with session.get(f"{proxy}/readyz") as r:
                    state: dict[str, Any] = await r.json()
                if state["generation"] == written.generation:
                    break
                await asyncio.sleep(0.05)
        acks = await control.store.acks()
        assert acks["topology"].generation == written.generation
    finally:
        await control.close()


async def test_sentinel(
    sentinel_url: str, start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    await follow_through(sentinel_url, start_upstream, start_proxy)


async def test_cluster(
    cluster_url: str, start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    await follow_through(cluster_url, start_upstream, start_proxy)


async def test_the_proxys_counts_reach_a_cluster(cluster_url: str) -> None:
    """Every pending window (a backlog of several, as after an outage) lands in one script
    call on a Cluster too: the window keys share one hash slot."""
    clock = [1_800_000_005.0]
    redis = proxy_redis.connect(cluster_url)
    try:
        stats = StatsRegistry()
        flusher = MetricsFlusher(redis, Keys(), stats, clock=lambda: clock[0])
        for _ in range(3):  # three windows wait, as if Redis had been away for 30 s
            stats.get("chat", "stable", "v1").record(10.0, 4.0, None)
            stats.get("embed", "stable", "v1").record(3.0, 1.0, "timeout")
            flusher.collect()
            clock[0] += 10
        assert len(flusher.pending) == 6
        await flusher.flush()
        assert not flusher.pending and flusher.flushes == 1
        for route in ("chat", "embed"):
            for start in range(1_800_000_000, 1_800_000_030, 10):
                fields = await redis.hgetall(Keys().metrics_window(route, start))
                assert fields[field_name("stable", "v1", "requests")] == "1"
    finally:
        await redis.aclose()


async def test_the_decision_log_reaches_a_cluster(cluster_url: str) -> None:
    """The decision writer's pipeline (HSET and EXPIRE on one tagged key) works on a Cluster."""
    redis = proxy_redis.connect(cluster_url)
    try:
        chat = decision_route()
        log = DecisionLog(DecisionLogSettings(sample_percent=100))
        log.activate()
        log.note(finished(chat, "n1", started=asyncio.get_running_loop().time()), chat, False, "a")
        writer = DecisionWriter(redis, Keys(), log, clock=lambda: 1_800_000_005.0)
        await writer.flush()
        assert writer.written == 1
        assert await redis.hexists(Keys().decisions(slot_start(1_800_000_005.0)), "n1")
    finally:
        await redis.aclose()


async def test_sentinel_with_its_own_password(
    guarded_sentinel_url: str, start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    """``sentinel_password`` (or SPLITGATE_REDIS_SENTINEL_PASSWORD) reaches the Sentinel in
    both planes; without it the primary cannot be found, and the error says so quickly."""
    url = with_settings(guarded_sentinel_url, SENTINEL_PASSWORD, None)
    await follow_through(url, start_upstream, start_proxy)
    client = connect(guarded_sentinel_url)
    try:
        async with asyncio.timeout(10):
            with pytest.raises(RedisError, match=r"(?i)auth"):
                await client.get("anything")
    finally:
        await client.aclose()
