"""CPU cost of one metrics flush (collect the deltas, one script call to Redis), per second.

Fills ``--tracks`` tracks with traffic spread over every bucket, then times ``--rounds``
flushes against a private redis-server, each after new traffic, the way the proxy flushes
once a second. Prints the CPU milliseconds one flush takes (so per second of proxy time).

    python bench/flush_cost.py [--tracks 4] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from redis.asyncio import Redis

from config.keys import Keys
from proxy.flusher import MetricsFlusher
from proxy.stats import StatsRegistry
from splitgate.redis_server import RedisServer


async def measure(tracks: int, rounds: int) -> list[float]:
    server = RedisServer()
    server.start()
    redis = Redis.from_url(server.url, decode_responses=True)
    try:
        stats = StatsRegistry()
        flusher = MetricsFlusher(redis, Keys(), stats)
        rng = random.Random(1)
        all_tracks = [stats.get("chat", f"t{i}", f"v{i}") for i in range(tracks)]
        samples = []
        for _ in range(rounds):
            for s in all_tracks:  # a second of traffic: a few hundred requests per track
                for _ in range(300):
                    s.record(rng.lognormvariate(5, 1.5), rng.lognormvariate(4, 1.5), None)
            cpu = time.process_time()
            await flusher.flush()
            samples.append((time.process_time() - cpu) * 1000)
        return samples
    finally:
        await redis.aclose()
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tracks", type=int, default=4)
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    samples = asyncio.run(measure(args.tracks, args.rounds))
    print(
        f"{args.tracks} tracks: flush CPU p50 {statistics.median(samples):.2f} ms, "
        f"p99 {sorted(samples)[int(len(samples) * 0.99) - 1]:.2f} ms per flush (once a second)"
    )


if __name__ == "__main__":
    main()
