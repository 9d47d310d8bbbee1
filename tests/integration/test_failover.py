"""Redis Sentinel failovers with real processes: a primary, a replica and three Sentinels on
loopback, the control plane and two proxies as ``python -m …`` processes on a
``redis+sentinel://`` URL.

- A write the promoted replica never received is not lost for the fleet: the control plane
  puts it back above every ack (audited as the guardian's), and the next change reaches every
  proxy instead of being ignored at a generation they already hold.
- A frozen Sentinel (SIGSTOP: it accepts connections, never answers) delays nobody for long.

The replica is cut off from the primary with ACLs: it replicates as user ``repl``; switching
that user off and killing its connection leaves the replica unable to resync while every
other client (Sentinels, planes) goes on. Deadlines are generous: timings are reported, never
asserted tightly.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from splitgate.redis_server import find_binary, free_port
from tests.conftest import StartUpstream
from tests.integration.conftest import PlaneProcess, RunPlane, run_cli

TOKEN = "failover-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
USERS = [f"user-{i}" for i in range(200)]


class Topology:
    """A primary, its replica (replicating as ACL user ``repl``) and three Sentinels."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.binary = find_binary()
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{nodes}/mymaster/0"

    def _spawn(self, port: int, *args: str) -> None:
        self.processes[port] = subprocess.Popen(
            [self.binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _server(self, port: int, *extra: str) -> None:
        data = self.dir / str(port)
        data.mkdir()
        self._spawn(
            port,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--save", "", "--appendonly", "no", "--loglevel", "warning", *extra),
        )

    async def start(self) -> None:
        await asyncio.to_thread(self._server, self.primary_port)
        await self.until_answers(self.primary_port)
        await self.command(
            self.primary_port, "ACL", "SETUSER", "repl", "on", ">replpass", "~*", "&*", "+@all"
        )
        await asyncio.to_thread(
            self._server,
            self.replica_port,
            *("--replicaof", "127.0.0.1", str(self.primary_port)),
            *("--masteruser", "repl", "--masterauth", "replpass"),
        )
        await self.until_answers(self.replica_port)
        await asyncio.to_thread(self._sentinels)
        for port in self.sentinel_ports:
            await self.until_answers(port)

        async def discovered() -> bool:
            for port in self.sentinel_ports:
                others = await self.command(port, "SENTINEL", "SENTINELS", "mymaster")
                replicas = await self.command(port, "SENTINEL", "REPLICAS", "mymaster")
                if len(others) < 2 or len(replicas) < 1:
                    return False
            link = await self.command(self.replica_port, "INFO", "replication")
            return bool(link["master_link_status"] == "up")

        await eventually(discovered, 30)

    def _sentinels(self) -> None:
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.primary_port} 2\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 10000\n",
                encoding="utf-8",
            )
            self._spawn(port, str(conf), "--sentinel")

    async def command(self, port: int, *args: Any) -> Any:
        async with Redis(port=port, socket_timeout=2, decode_responses=True) as r:
            return await r.execute_command(*args)  # type: ignore[no-untyped-call]

    async def until_answers(self, port: int) -> None:
        async def answers() -> bool:
            assert self.processes[port].poll() is None, f"redis on {port} exited"
            return bool(await self.command(port, "PING"))

        await eventually(answers, 10)

    async def cut_off_replica(self) -> None:
        """The replica can no longer replicate; the primary keeps accepting writes."""
        await self.command(self.primary_port, "ACL", "SETUSER", "repl", "off")
        await self.command(self.primary_port, "CLIENT", "KILL", "USER", "repl")

        async def down() -> bool:
            info = await self.command(self.replica_port, "INFO", "replication")
            return bool(info["master_link_status"] == "down")

        await eventually(down, 10)

    async def kill_primary(self) -> None:
        self.processes[self.primary_port].kill()
        await asyncio.to_thread(self.processes[self.primary_port].wait, 10)

    async def primary_is(self, port: int, *, ask: int) -> bool:
        address = await self.command(ask, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
        return bool(address) and int(address[1]) == port

    def freeze(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(timeout=10)


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while True:
            try:
                if await condition():
                    return
            except (OSError, aiohttp.ClientError, RedisError):
                pass
            await asyncio.sleep(0.1)


class Fleet:
    def __init__(
        self, topology: Topology, control: PlaneProcess, proxies: list[PlaneProcess]
    ) -> None:
        self.topology = topology
        self.control = control
        self.proxies = proxies
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method, self.control.url + path, json=body, headers=AUTH
        ) as r:
            return r.status, await r.json()

    async def set_canary(self, weight: float) -> int:
        status, answer = await self.admin(
            "PUT",
            "/v1/routes/chat/weights",
            {"weights": {"stable": 100 - weight, "canary": weight}},
        )
        assert status == 200, answer
        generation: int = answer["generation"]
        return generation

    async def proxy_generations(self) -> list[int]:
        out = []
        for proxy in self.proxies:
            async with self.session.get(f"{proxy.url}/readyz") as r:
                out.append((await r.json())["generation"])
        return out

    async def converged(self) -> bool:
        status, answer = await self.admin("GET", "/v1/routes/chat")
        return status == 200 and bool(answer["converged"]) and len(answer["replicas"]) == 2

    async def canary_share(self, proxy: PlaneProcess) -> float:
        canary = 0
        for user in USERS:
            async with self.session.get(f"{proxy.url}/v1/models", headers={"x-user-id": user}) as r:
                assert r.status == 200
                canary += r.headers["X-Splitgate-Track"] == "canary"
        return canary / len(USERS)

    async def audit(self) -> list[dict[str, Any]]:
        status, answer = await self.admin("GET", "/v1/audit?limit=20")
        assert status == 200
        records: list[dict[str, Any]] = answer["records"]
        return records


@pytest.fixture
async def fleet(
    tmp_path: Path, start_upstream: StartUpstream, run_plane: RunPlane
) -> AsyncIterator[Fleet]:
    topology = await asyncio.to_thread(Topology, tmp_path)
    try:
        await topology.start()
        _, stable = await start_upstream("v1.0.0")
        _, canary = await start_upstream("v1.1.0")
        routes = tmp_path / "routes.yaml"
        await asyncio.to_thread(
            routes.write_text,
            f"""routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    stickiness: [header:x-user-id]
    tracks:
      - {{name: stable, version: v1.0.0, upstreams: ["{stable}"], weight: 95}}
      - {{name: canary, version: v1.1.0, upstreams: ["{canary}"], weight: 5}}
""",
            "utf-8",
        )
        env = {"SPLITGATE_ADMIN_TOKEN": TOKEN, "SPLITGATE_REDIS_URL": topology.url}
        control = await run_plane("control", "--config", str(routes), env=env)
        proxies = [
            await run_plane(
                "proxy", "--config", str(routes), env={**env, "SPLITGATE_INSTANCE": f"proxy-{i}"}
            )
            for i in range(2)
        ]
        fleet = Fleet(topology, control, proxies)
        try:
            await eventually(fleet.converged, 20)
            yield fleet
        finally:
            await fleet.session.close()
    finally:
        await asyncio.to_thread(topology.stop)


async def lose_a_write(fleet: Fleet) -> int:
    """Cut the replica off, write 70 % canary (every proxy applies it), kill the primary and
    wait for the replica's promotion. Returns the lost generation."""
    topology = fleet.topology
    await topology.cut_off_replica()
    lost = await fleet.set_canary(70)

    async def applied() -> bool:
        return await fleet.proxy_generations() == [lost, lost]

    await eventually(applied, 15)
    await topology.kill_primary()

    async def promoted() -> bool:
        return await topology.primary_is(topology.replica_port, ask=topology.sentinel_ports[1])

    await eventually(promoted, 30)
    return lost


async def splitgate(*args: str, admin_url: str) -> tuple[int, str, str]:
    return await run_cli(*args, admin_url=admin_url, token=TOKEN)


async def test_a_change_after_a_failover_that_lost_a_write_reaches_every_proxy(
    fleet: Fleet,
) -> None:
    lost = await lose_a_write(fleet)
    code, out, err = await splitgate(
        "weights",
        "set",
        "chat",
        "stable=90",
        "canary=10",
        "--wait",
        "15",
        admin_url=fleet.control.url,
    )
    assert code == 0, out + err
    status, route = await fleet.admin("GET", "/v1/routes/chat")
    assert status == 200 and route["converged"], route
    assert [t["weight"] for t in route["route"]["tracks"]] == [90, 10]
    assert route["generation"] > lost + 1  # above the lost write, and above its re-applied copy
    assert await fleet.proxy_generations() == [route["generation"]] * 2
    for proxy in fleet.proxies:
        assert await fleet.canary_share(proxy) < 0.25  # 10 %, not the lost write's 70 %
    reasons = [r["reason"] for r in await fleet.audit() if r["actor"] == "splitgate-guardian"]
    assert any(f"re-applied generation {lost} lost by a Redis failover" in r for r in reasons)


async def test_a_write_lost_in_a_failover_is_re_applied_by_the_guardian(fleet: Fleet) -> None:
    lost = await lose_a_write(fleet)

    async def reapplied() -> bool:
        status, route = await fleet.admin("GET", "/v1/routes/chat")
        return status == 200 and route["generation"] > lost and route["converged"]

    await eventually(reapplied, 20)
    _, route = await fleet.admin("GET", "/v1/routes/chat")
    assert [t["weight"] for t in route["route"]["tracks"]] == [30, 70]  # the lost write, back
    assert await fleet.proxy_generations() == [route["generation"]] * 2
    record = next(r for r in await fleet.audit() if r["action"] == "reapply")
    assert record["actor"] == "splitgate-guardian"
    assert record["reason"].startswith(f"re-applied generation {lost} lost by a Redis failover")
    assert record["generation"] == route["generation"]


async def test_a_frozen_sentinel_delays_writes_and_proxies_only_briefly(fleet: Fleet) -> None:
    topology = fleet.topology
    first = await fleet.set_canary(20)
    await eventually(fleet.converged, 15)
    topology.freeze(topology.sentinel_ports[0])  # the first Sentinel of the URL
    await topology.kill_primary()
    killed = time.monotonic()

    async def promoted() -> bool:
        return await topology.primary_is(topology.replica_port, ask=topology.sentinel_ports[1])

    await eventually(promoted, 30)
    promoted_s = time.monotonic() - killed
    generation = 0

    async def written() -> bool:
        nonlocal generation
        status, answer = await fleet.admin(
            "PUT", "/v1/routes/chat/weights", {"weights": {"stable": 60, "canary": 40}}
        )
        generation = answer.get("generation", 0) if status == 200 else 0
        return status == 200

    await eventually(written, 20)  # "writes resume within 10 s": a generous deadline here
    written_s = time.monotonic() - killed
    assert generation > first

    async def followed() -> bool:
        return all(g >= generation for g in await fleet.proxy_generations())

    await eventually(followed, 20)
    followed_s = time.monotonic() - killed
    await eventually(fleet.converged, 20)
    print(  # shown with -s: the figures behind the deadlines
        f"\nfrozen Sentinel: promoted after {promoted_s:.1f} s, first write after "
        f"{written_s:.1f} s, both proxies on it after {followed_s:.1f} s (since the kill)"
    )
