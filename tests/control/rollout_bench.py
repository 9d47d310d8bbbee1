"""A rollout runner against a real Redis with an injected clock: the ``bench`` fixture.

Metric windows are written as the proxies would (``WindowReader.add``), acks as the watchers
would, so each test decides exactly what the runner sees at each step.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from config.keys import Ack, Keys
from config.metrics import field_name
from config.plans import CanaryPlan, parse_plan
from config.records import RolloutRecord
from config.schema import RoutingDocument
from control.rollouts import Rollouts
from control.store import Change, DocumentStore
from control.windows import WindowReader
from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Bench:
    redis: Any
    keys: Keys
    store: DocumentStore
    windows: WindowReader
    rollouts: Rollouts
    clock: Clock
    upstream: str
    probes: list[str]

    async def weights(self) -> dict[str, float]:
        document = await self.store.read()
        assert document is not None
        return {t.name: t.weight for t in document.routes[0].tracks}

    async def ack(self) -> None:
        """Every proxy replica applied the newest generation."""
        generation = await self.store.generation()
        ack = Ack(generation=generation, applied_at=self.clock())
        await self.redis.set(self.keys.ack("p1"), ack.model_dump_json())

    async def record(self, rollout_id: str) -> dict[str, Any]:
        """The record's JSON as stored, which every test checks against ``config.records``."""
        raw = await self.redis.get(self.keys.rollout(rollout_id))
        assert raw is not None
        stored: dict[str, Any] = json.loads(raw)
        assert RolloutRecord.model_validate(stored).stored() == stored
        return stored

    async def model(self, rollout_id: str) -> RolloutRecord:
        record = await self.rollouts.get(rollout_id)
        assert record is not None
        return record

    async def save(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Save a record edited as JSON, as the runner saves its own: compare-and-set."""
        saved = await self.rollouts.records.save(RolloutRecord.model_validate(stored))
        return saved.stored()

    async def step(self, rollout_id: str) -> dict[str, Any]:
        await self.rollouts.step(await self.model(rollout_id))
        return await self.record(rollout_id)

    async def serve(self, track: str, version: str, **counts: int) -> None:
        """Counts landing in the current window, as a proxy flush would add them."""
        await self.windows.add(
            "chat", {field_name(track, version, k): v for k, v in counts.items()}
        )

    async def events(self) -> list[str]:
        return [
            json.loads(f["event"])["kind"] for _, f in await self.redis.xrange(self.keys.events)
        ]


@pytest.fixture
async def bench(redis_server: RedisServer, start_upstream: StartUpstream) -> AsyncIterator[Bench]:
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    keys = Keys("t")
    store = DocumentStore(redis, keys)
    _, upstream = await start_upstream("v2")
    document = RoutingDocument.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "tracks": [
                        {"name": "stable", "version": "v1", "upstreams": [upstream], "weight": 100},
                        {"name": "canary", "version": "v0", "upstreams": [upstream], "weight": 0},
                    ],
                }
            ]
        }
    )
    await store.write(document, 0, Change("test", "seed", "seed", "routes"))
    clock = Clock()
    windows = WindowReader(redis, keys, clock=clock)
    probes: list[str] = []

    async def probe(url: str, method: str, status: int, regex: str | None) -> tuple[bool, str]:
        probes.append(url)
        return url.endswith("/green"), "status 200" if url.endswith("/green") else "status 503"

    rollouts = Rollouts(redis, keys, store, windows, clock=clock, probe=probe)
    yield Bench(redis, keys, store, windows, rollouts, clock, upstream, probes)
    await redis.aclose()


def canary_plan(upstream: str, extra: str = "") -> CanaryPlan:
    plan = parse_plan(
        f"""canary_deployment:
  route: chat
  candidate: {{track: canary, version: v2, upstreams: ["{upstream}"]}}
  phases:
    - {{name: "5%", traffic: 5, duration: 60s}}
    - {{name: "100%", traffic: 100}}
  canary_metrics: {{primary: [], secondary: []}}
{extra}"""
    )
    assert isinstance(plan, CanaryPlan)
    return plan
