"""The rollout runner stepped by hand against a real Redis, with an injected clock.

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
from config.plans import ABTestPlan, BigBangPlan, CanaryPlan, as_canary, parse_plan
from config.schema import RoutingDocument
from control import accumulate
from control.edits import put_track, set_weights
from control.rollouts import Rollouts, UnknownItem
from control.store import Change, DocumentStore
from control.strategies.canary import CommandRefused
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
        record = await self.rollouts.get(rollout_id)
        assert record is not None
        return record

    async def step(self, rollout_id: str) -> dict[str, Any]:
        await self.rollouts.step(await self.record(rollout_id))
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


async def test_required_checklist_items_hold_the_rollout_before_any_traffic(bench: Bench) -> None:
    plan = canary_plan(
        bench.upstream,
        """  checklist:
    required:
      - tests_passed
      - {name: review_approved, probe: {url: "http://127.0.0.1:1/green"}}
      - {name: docs_synced, probe: {url: "http://127.0.0.1:1/red"}}
    recommended: [load_test, security_review]
""",
    )
    record = await bench.rollouts.create(plan, "ci")
    rid = record["id"]
    assert record["warnings"] == [
        "recommended checklist item 'load_test' is not confirmed",
        "recommended checklist item 'security_review' is not confirmed",
    ]
    held = await bench.step(rid)
    assert held["state"]["status"] == "pending"
    assert "tests_passed, docs_synced" in held["waiting_for"]
    assert held["checklist"]["required"]["review_approved"]["how"] == "probe"
    assert held["probe_results"]["docs_synced"] == "status 503"
    assert await bench.weights() == {"stable": 100, "canary": 0}

    with pytest.raises(UnknownItem, match="no item 'changelog'"):
        await bench.rollouts.attest(rid, "changelog", "alice", "")
    await bench.rollouts.attest(rid, "tests_passed", "ci-bot", "run 1234 green")
    await bench.rollouts.attest(rid, "load_test", "bob", "")
    still = await bench.step(rid)
    assert still["state"]["status"] == "pending"
    assert still["waiting_for"].startswith("required checklist items: docs_synced")

    attested = await bench.rollouts.attest(rid, "docs_synced", "alice", "synced by hand")
    assert attested is not None
    done = attested["checklist"]["required"]["tests_passed"]
    assert (done["by"], done["how"], done["note"]) == ("ci-bot", "attested", "run 1234 green")
    assert attested["warnings"] == ["recommended checklist item 'security_review' is not confirmed"]
    started = await bench.step(rid)
    assert started["state"]["status"] == "running"
    assert await bench.weights() == {"stable": 95, "canary": 5}


async def test_a_decision_overtaken_by_a_command_never_reaches_the_weights(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci"))["id"]
    await bench.step(rid)
    assert await bench.weights() == {"stable": 95, "canary": 5}
    # The runner decided the next phase and saved it, but had not written the weights yet…
    stale = await bench.record(rid)
    stale["desired"] = {"weights": {"canary": 100, "stable": 0}, "reason": "next phase"}
    await bench.rollouts._save(stale)
    # …when an operator aborted: the abort's weights are written, the runner's never are.
    aborted = await bench.rollouts.command(rid, "abort")
    assert aborted is not None and aborted["state"]["status"] == "aborted"
    await bench.rollouts._flush(stale)
    assert await bench.weights() == {"stable": 100, "canary": 0}
    await bench.rollouts.step_all()
    assert await bench.weights() == {"stable": 100, "canary": 0}


async def test_weights_decided_before_a_crash_are_written_by_the_next_step(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci"))["id"]
    await bench.step(rid)
    record = await bench.record(rid)
    record["desired"] = {"weights": {"canary": 100, "stable": 0}, "reason": "next phase"}
    await bench.rollouts._save(record)  # the process died here
    restarted = Rollouts(bench.redis, bench.keys, bench.store, bench.windows, clock=bench.clock)
    await restarted.step_all()
    assert await bench.weights() == {"stable": 0, "canary": 100}
    after = await bench.record(rid)
    assert after["desired"] is None
    assert after["state"]["generation"] == await bench.store.generation()


async def test_every_change_of_state_is_an_event_for_the_webhooks(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci"))["id"]
    await bench.step(rid)
    await bench.rollouts.command(rid, "pause")
    await bench.rollouts.command(rid, "resume")
    await bench.rollouts.command(rid, "abort")
    assert await bench.events() == ["phase", "paused", "resumed", "aborted"]
    _, fields = (await bench.redis.xrange(bench.keys.events))[0]
    event = json.loads(fields["event"])
    assert (event["rollout"], event["route"], event["version"]) == (rid, "chat", "v2")


async def test_more_hallucinations_than_the_baseline_roll_back(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci"))["id"]
    await bench.step(rid)
    await bench.ack()
    for _ in range(6):
        bench.clock.now += 10
        await bench.serve(
            "stable", "v1", requests=1900, **{"fb:hallucination_yes": 2, "fb:hallucination_no": 98}
        )
        await bench.serve(
            "canary", "v2", requests=100, **{"fb:hallucination_yes": 30, "fb:hallucination_no": 70}
        )
        record = await bench.step(rid)
        if record["state"]["status"] != "running":
            break
    assert record["state"]["status"] == "rolled_back"
    assert "hallucinations vs baseline" in record["state"]["history"][-1]["detail"]
    assert await bench.weights() == {"stable": 100, "canary": 0}
    looks = await bench.rollouts.verdicts(rid, 10)
    assert looks and looks[0]["verdicts"][0]["role"] == "rollback"


async def test_an_ab_test_reports_every_metric_and_restores_the_weights(bench: Bench) -> None:
    plan = parse_plan(
        """ab_testing:
  route: chat
  split: {stable: 50, canary: 50}
  sample_size: 1000
  metrics: [error_rate, latency_p95]
"""
    )
    assert isinstance(plan, ABTestPlan)
    rid = (await bench.rollouts.create(plan, "ci", "ab_test"))["id"]
    running = await bench.step(rid)
    assert running["state"]["status"] == "running"
    assert await bench.weights() == {"stable": 50, "canary": 50}
    with pytest.raises(CommandRefused, match="cannot promote a rollout that is running"):
        await bench.rollouts.command(rid, "promote")
    await bench.ack()
    bench.clock.now += 10
    await bench.serve("stable", "v1", requests=600, **{"err:upstream_5xx": 6, "lat:40": 600})
    await bench.serve("canary", "v0", requests=600, **{"err:upstream_5xx": 30, "lat:40": 600})
    assert (await bench.step(rid))["state"]["status"] == "running"  # 600 of 1,000 each
    bench.clock.now += 10
    await bench.serve("stable", "v1", requests=600, **{"err:upstream_5xx": 6, "lat:40": 600})
    await bench.serve("canary", "v0", requests=600, **{"err:upstream_5xx": 30, "lat:40": 600})
    done = await bench.step(rid)
    assert done["state"]["status"] == "completed"
    report = done["report"]
    assert report["served"] == {"stable": 1200, "canary": 1200}
    verdicts = {c["metric"]: c["verdict"] for c in report["comparisons"]}
    assert verdicts == {"error_rate": "b_worse", "latency_p95": "no_difference"}
    assert await bench.weights() == {"stable": 100, "canary": 0}  # as before the test
    assert (await bench.events())[-2:] == ["completed", "report"]


async def test_post_deploy_checks_run_after_promotion_and_are_recorded(bench: Bench) -> None:
    plan = parse_plan(
        f"""big_bang_deployment:
  route: chat
  candidate: {{track: canary, version: v2, upstreams: ["{bench.upstream}"]}}
  post_deploy: {{after: 60s, criteria: {{error_rate: "< 1%"}}}}
"""
    )
    assert isinstance(plan, BigBangPlan)
    rid = (await bench.rollouts.create(as_canary(plan), "ci", "big_bang"))["id"]
    await bench.step(rid)
    await bench.ack()
    promoted = await bench.step(rid)
    assert promoted["state"]["status"] == "promoted"
    assert promoted["post_deploy"]["status"] == "scheduled"
    assert promoted["waiting_for"].startswith("post-deploy checks in 60 s")
    await bench.rollouts.step_all()  # not due yet
    assert (await bench.record(rid))["post_deploy"]["status"] == "scheduled"
    bench.clock.now += 30
    await bench.serve("canary", "v2", requests=1200, **{"err:upstream_5xx": 120})
    bench.clock.now += 31
    await bench.rollouts.step_all()
    checked = await bench.record(rid)
    post = checked["post_deploy"]
    assert post["status"] == "failed"
    assert [c["check"] for c in post["checks"]] == ["health", "error_rate"]
    assert post["checks"][0]["verdict"] == "pass"
    assert post["checks"][1]["verdict"] == "fail"
    assert (await bench.events())[-1] == "post_deploy"
    await bench.rollouts.step_all()  # recorded once
    assert (await bench.events()).count("post_deploy") == 1


async def test_counts_since_the_start_outlive_the_windows(bench: Bench) -> None:
    accumulator = accumulate.new_accumulator(bench.clock())
    for _ in range(3):
        await bench.serve("canary", "v2", requests=10)
        bench.clock.now += 10
    bench.clock.now += 10  # the last of the three windows is closed too
    seen = await accumulate.totals(bench.windows, "chat", accumulator, ["canary"], bench.clock())
    assert seen["canary"].requests == 30
    # The closed windows are kept in the accumulator: losing them in Redis loses nothing.
    for key in await bench.redis.keys("{t}:metrics:*"):
        await bench.redis.delete(key)
    await bench.serve("canary", "v2", requests=5)
    seen = await accumulate.totals(bench.windows, "chat", accumulator, ["canary"], bench.clock())
    assert seen["canary"].requests == 35


async def test_an_ab_test_judges_only_its_own_traffic_and_zeroes_other_tracks(
    bench: Bench,
) -> None:
    document = await bench.store.read()
    assert document is not None
    body = {"version": "v3", "upstreams": [bench.upstream], "weight": 0}
    with_v3 = put_track(document, "chat", "v3", body)
    await bench.store.write(with_v3, document.generation, Change("test", "", "put_track", "v3"))
    plan = parse_plan(
        """ab_testing:
  route: chat
  split: {canary: 50, v3: 50}
  sample_size: 100
  metrics: [error_rate]
  checklist: {required: [tests_passed]}
"""
    )
    assert isinstance(plan, ABTestPlan)
    rid = (await bench.rollouts.create(plan, "ci", "ab_test"))["id"]
    await bench.step(rid)  # waits for the checklist…
    await bench.serve("canary", "v0", requests=5000, **{"err:upstream_5xx": 2500})  # …meanwhile
    bench.clock.now += 3600
    await bench.rollouts.attest(rid, "tests_passed", "ci", "")
    running = await bench.step(rid)
    assert running["state"]["status"] == "running"
    assert await bench.weights() == {"stable": 0, "canary": 50, "v3": 50}
    await bench.ack()
    bench.clock.now += 10
    await bench.serve("canary", "v0", requests=300, **{"err:upstream_5xx": 3})
    await bench.serve("v3", "v3", requests=300, **{"err:upstream_5xx": 3})
    done = await bench.step(rid)
    assert done["state"]["status"] == "completed"
    assert done["report"]["served"] == {"canary": 300, "v3": 300}  # not the hour before
    assert done["report"]["comparisons"][0]["verdict"] == "no_difference"
    assert await bench.weights() == {"stable": 100, "canary": 0, "v3": 0}


async def test_a_route_changed_under_a_rollout_ends_it_with_the_reason(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci"))["id"]
    await bench.step(rid)
    document = await bench.store.read()
    assert document is not None
    body = {"version": "v9", "upstreams": [bench.upstream], "weight": 0}
    third = put_track(document, "chat", "other", body)
    third = set_weights(third, "chat", {"stable": 90, "canary": 5, "other": 5})
    await bench.store.write(third, document.generation, Change("ops", "", "set", "w"))
    await bench.rollouts.command(rid, "abort")  # wants canary 0, stable 100: 105 % in all
    ended = await bench.record(rid)
    assert ended["state"]["status"] == "aborted"
    assert "the weights cannot be written" in ended["state"]["history"][-1]["detail"]
    assert await bench.redis.get(bench.keys.active_rollout("chat")) is None  # released
