"""Propagation time of a weight change across three proxy replicas.

Starts a private redis-server, one control plane and three proxy replicas (separate
processes, loopback only), then repeatedly sets new weights through the admin API and times
from the moment the PUT returned until the last replica routes by the new generation (each
replica's ``/readyz`` is polled back to back). Runs once with pub/sub and once with the
watchers on polling alone (``SPLITGATE_REDIS_PUBSUB=off``, the fallback when pub/sub is lost).

    python bench/propagation.py [--rounds 200] [--poll-rounds 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from splitgate.redis_server import RedisServer, free_port

TOKEN = "bench-admin-token-0123456789"
ROUTES = """routes:
  - name: chat
    match: {path_prefix: /v1/}
    tracks:
      - {name: stable, version: v1, upstreams: ["http://127.0.0.1:9"], weight: 90}
      - {name: canary, version: v2, upstreams: ["http://127.0.0.1:9"], weight: 10}
"""


async def spawn(
    module: str, port: int, env: dict[str, str], *args: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        "--listen",
        f"127.0.0.1:{port}",
        env={**os.environ, **env, "SPLITGATE_LOG_LEVEL": "warning"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_ok(session: aiohttp.ClientSession, url: str) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                async with session.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


async def generation_of(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as r:
        return int((await r.json())["generation"])


async def seen_at(session: aiohttp.ClientSession, url: str, generation: int, limit: float) -> float:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        if await generation_of(session, url) >= generation:
            return time.perf_counter()
    raise TimeoutError(f"{url} did not reach generation {generation} within {limit} s")


async def measure(rounds: int, pubsub: bool, poll_s: float) -> list[float]:
    redis = RedisServer()
    redis.start()
    processes: list[asyncio.subprocess.Process] = []
    with tempfile.TemporaryDirectory() as tmp:
        routes = Path(tmp) / "routes.yaml"
        routes.write_text(ROUTES, encoding="utf-8")
        env = {
            "SPLITGATE_REDIS_URL": redis.url,
            "SPLITGATE_ADMIN_TOKEN": TOKEN,
            "SPLITGATE_REDIS_PUBSUB": "on" if pubsub else "off",
            "SPLITGATE_REDIS_POLL": str(poll_s),
        }
        try:
            admin_port, proxy_ports = free_port(), [free_port() for _ in range(3)]
            processes.append(await spawn("control", admin_port, env, "--config", str(routes)))
            for i, port in enumerate(proxy_ports):
                processes.append(
                    await spawn(
                        "proxy",
                        port,
                        {**env, "SPLITGATE_INSTANCE": f"bench-{i}"},
                        "--config",
                        str(routes),
                    )
                )
            async with aiohttp.ClientSession() as session:
                admin = f"http://127.0.0.1:{admin_port}"
                readyz = [f"http://127.0.0.1:{p}/readyz" for p in proxy_ports]
                await wait_ok(session, f"{admin}/healthz")
                for url in readyz:
                    await wait_ok(session, url)
                samples = []
                for i in range(rounds):
                    canary = 10 + (i % 2) * 10
                    body = {"weights": {"stable": 100 - canary, "canary": canary}}
                    async with session.put(
                        f"{admin}/v1/routes/chat/weights",
                        json=body,
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as r:
                        generation = (await r.json())["generation"]
                        returned = time.perf_counter()
                    seen = await asyncio.gather(
                        *(seen_at(session, url, generation, 10 * poll_s + 5) for url in readyz)
                    )
                    samples.append((max(seen) - returned) * 1000)
                return samples
        finally:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
                await process.wait()
            redis.stop()


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "rounds": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def run_both(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    return {
        "pubsub": summary(await measure(args.rounds, True, args.poll_seconds)),
        "poll only": summary(await measure(args.poll_rounds, False, args.poll_seconds)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--poll-rounds", type=int, default=20)
    p.add_argument("--poll-seconds", type=float, default=1.0)
    p.add_argument("--json", help="write the figures here too")
    args = p.parse_args()
    results = asyncio.run(run_both(args))
    print("| mode | rounds | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    for mode, s in results.items():
        print(f"| {mode} | {s['rounds']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
