"""The flag schedule runner stepped by hand against a real Redis, with an injected clock.

Metric windows are written as the proxies' flushers would (``WindowReader.add``, with the
per-flag fields), so each test decides what the analysis sees.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from config.flag_schedule import ScheduleStep
from config.keys import Keys, StoredDocument
from config.metrics import field_name, flag_field_name
from config.schedule_records import ScheduleRecord
from config.schema import RoutingDocument
from control.schedule import ACTOR, Schedules
from control.schedule_steps import apply_step, set_paused
from control.store import Change, DocumentStore
from control.windows import WindowReader
from splitgate.redis_server import RedisServer
from tests.control.schedule_doc import FLAG, SEED, at, document


class Clock:
    def __init__(self) -> None:
        self.now = at("2025-03-01T00:00")

    def __call__(self) -> float:
        return self.now


@dataclass
class Bench:
    redis: Redis
    keys: Keys
    store: DocumentStore
    clock: Clock
    schedules: Schedules

    async def seed(self, doc: RoutingDocument) -> None:
        current = await self.store.read()
        await self.store.write(
            doc, 0 if current is None else current.generation, Change("test", "", "seed", "")
        )

    async def document(self) -> StoredDocument:
        stored = await self.store.read()
        assert stored is not None
        return stored

    async def step(self, when: str | None = None) -> StoredDocument:
        if when is not None:
            self.clock.now = at(when)
        await self.schedules.step_all()
        return await self.document()

    async def actions(self) -> list[tuple[str, str, str]]:
        """(action, actor, reason) of every audit record after the seed, oldest first."""
        records = await self.store.audit(1000)
        return [(r["action"], r["actor"], r["reason"]) for r in reversed(records)][1:]

    async def record(self) -> ScheduleRecord:
        record = await self.schedules.record(FLAG)
        assert record is not None
        return record

    async def serve(self, released: tuple[int, int], baseline: tuple[int, int]) -> None:
        """Counts landing in the current window, as the proxies' flushers add them."""
        fields = {
            flag_field_name("v2", "v2.0.0", "requests", FLAG): released[0],
            flag_field_name("v2", "v2.0.0", "err:upstream_5xx", FLAG): released[1],
            field_name("v2", "v2.0.0", "requests"): released[0],
            field_name("v2", "v2.0.0", "err:upstream_5xx"): released[1],
            field_name("v1", "v1.0.0", "requests"): baseline[0],
            field_name("v1", "v1.0.0", "err:upstream_5xx"): baseline[1],
        }
        await WindowReader(self.redis, self.keys, clock=self.clock).add("chat", fields)


@pytest.fixture
async def bench(redis_server: RedisServer) -> AsyncIterator[Bench]:
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    keys = Keys("t")
    store = DocumentStore(redis, keys)
    clock = Clock()
    schedules = Schedules(redis, keys, store, clock=clock)
    yield Bench(redis, keys, store, clock, schedules)
    await redis.aclose()


def flag_of(doc: RoutingDocument) -> tuple[float, list[str]]:
    flag = doc.feature_flags[FLAG]
    return flag.rollout_percentage, flag.target_groups


# The runner -------------------------------------------------------------------------------


async def test_each_step_applies_once_at_its_time_and_not_before(bench: Bench) -> None:
    await bench.seed(document(SEED))
    seeded = await bench.document()
    assert (await bench.step("2025-03-31T23:59")).generation == seeded.generation
    first = await bench.step("2025-04-01T00:00")
    assert flag_of(first) == (5, ["internal_users"])
    assert first.generation == seeded.generation + 1
    assert (await bench.step("2025-04-01T00:01")).generation == first.generation
    assert (await bench.step("2025-04-08T09:29")).generation == first.generation
    second = await bench.step("2025-04-08T09:30")
    assert flag_of(second) == (20, ["beta_users"])
    third = await bench.step("2025-04-15T00:00")
    assert flag_of(third) == (100, ["all_users"])
    final = await bench.step("2025-04-22T00:00")
    assert FLAG not in final.feature_flags
    assert {t.name: t.weight for t in final.routes[0].tracks} == {"v1": 0, "v2": 100, "v3": 0}
    await bench.step("2025-05-01T00:00")
    actions = await bench.actions()
    assert [a[:2] for a in actions] == [("flag_schedule_step", ACTOR)] * 4
    assert actions[0][2] == "step 1 of 4 (2025-04-01): 5 % of internal_users"
    assert actions[3][2] == "step 4 of 4 (2025-04-22): 100 % of all_users, then remove the flag"
    records = await bench.store.audit(1)
    assert records[0]["before"]["rollout_percentage"] == 100 and records[0]["after"] is None


async def test_dates_are_local_to_the_schedules_time_zone(bench: Bench) -> None:
    tokyo = {"timezone": "Asia/Tokyo", "schedule": SEED["schedule"][:1]}
    await bench.seed(document(tokyo))
    assert flag_of(await bench.step("2025-03-31T14:59")) == (25, ["beta_users"])
    assert flag_of(await bench.step("2025-03-31T15:00")) == (5, ["internal_users"])


async def test_overdue_steps_apply_together_in_order(bench: Bench) -> None:
    await bench.seed(document(SEED))
    doc = await bench.step("2025-04-10T00:00")
    assert flag_of(doc) == (20, ["beta_users"])
    assert [a[2][:6] for a in await bench.actions()] == ["step 1", "step 2"]
    assert [entry.date for entry in (await bench.record()).applied] == [
        "2025-04-01",
        "2025-04-08T09:30",
    ]


async def test_progress_survives_a_restart(bench: Bench) -> None:
    await bench.seed(document(SEED))
    applied = await bench.step("2025-04-01T12:00")
    restarted = Schedules(bench.redis, bench.keys, bench.store, clock=bench.clock)
    bench.schedules = restarted
    assert (await bench.step("2025-04-02T00:00")).generation == applied.generation
    assert flag_of(await bench.step("2025-04-08T09:30")) == (20, ["beta_users"])
    assert len(await bench.actions()) == 2


async def test_a_step_written_before_a_crash_is_not_written_again(bench: Bench) -> None:
    """The document holds the step but the record does not (the runner died in between)."""
    await bench.seed(document(SEED))
    await bench.step("2025-03-20T00:00")  # the runner has seen the schedule
    doc = await bench.document()
    step = ScheduleStep.model_validate(SEED["schedule"][0])
    await bench.store.write(
        apply_step(doc, FLAG, step),
        doc.generation,
        Change(ACTOR, "step 1", "flag_schedule_step", ""),
    )
    written = await bench.document()
    assert (await bench.step("2025-04-01T00:00")).generation == written.generation
    record = await bench.record()
    assert record.last is not None and record.last.outcome == "in_effect"
    assert len(record.applied) == 1
    assert flag_of(await bench.step("2025-04-08T09:30")) == (20, ["beta_users"])


async def test_pause_and_resume(bench: Bench) -> None:
    await bench.seed(document(SEED))
    await bench.step("2025-04-01T00:00")
    doc = await bench.document()
    await bench.store.write(
        set_paused(doc, FLAG, True), doc.generation, Change("alice", "hold", "pause_schedule", "")
    )
    paused = await bench.step("2025-04-09T00:00")
    assert flag_of(paused) == (5, ["internal_users"])
    await bench.store.write(
        set_paused(paused, FLAG, False),
        paused.generation,
        Change("alice", "", "resume_schedule", ""),
    )
    await bench.schedules.note(FLAG, "resumed", "resumed by alice", restart=True)
    assert flag_of(await bench.step("2025-04-09T00:01")) == (20, ["beta_users"])
    assert [a[0] for a in await bench.actions()] == [
        "flag_schedule_step",
        "pause_schedule",
        "resume_schedule",
        "flag_schedule_step",
    ]


def gated(requires: bool = True) -> dict[str, Any]:
    steps = [dict(s) for s in SEED["schedule"]]
    steps[1]["requires_analysis"] = requires
    return {"schedule": steps}


async def test_the_analysis_gate_waits_then_passes(bench: Bench) -> None:
    await bench.seed(document(gated()))
    await bench.step("2025-04-01T00:00")
    bench.clock.now = at("2025-04-01T06:00")
    await bench.serve(released=(50, 0), baseline=(5_000, 5))
    # Looked at long before the step is due: the counts are kept beyond the windows' life.
    await bench.step("2025-04-01T06:01")
    waiting = await bench.step("2025-04-08T09:30")
    assert flag_of(waiting) == (5, ["internal_users"])
    record = await bench.record()
    assert record.last is not None and record.last.outcome == "waiting"
    assert "50 released requests since the previous step" in record.last.detail
    assert not waiting.feature_flags[FLAG].gradual_rollout.paused  # type: ignore[union-attr]
    bench.clock.now = at("2025-04-08T10:00")
    await bench.serve(released=(20_000, 100), baseline=(200_000, 1_000))
    passed = await bench.step("2025-04-08T10:01")
    assert flag_of(passed) == (20, ["beta_users"])
    last = (await bench.record()).last
    assert last is not None and last.outcome == "applied"


async def test_a_failed_analysis_pauses_the_schedule_with_the_reason(bench: Bench) -> None:
    await bench.seed(document(gated()))
    await bench.step("2025-04-01T00:00")
    bench.clock.now = at("2025-04-07T12:00")
    await bench.serve(released=(2_000, 200), baseline=(20_000, 200))
    await bench.step("2025-04-07T12:01")  # the runner looks every few seconds
    paused = await bench.step("2025-04-08T09:30")
    schedule = paused.feature_flags[FLAG].gradual_rollout
    assert schedule is not None and schedule.paused
    assert flag_of(paused) == (5, ["internal_users"])
    action, actor, reason = (await bench.actions())[-1]
    assert (action, actor) == ("flag_schedule_pause", ACTOR)
    assert reason.startswith("step 2 (2025-04-08T09:30) not applied: the analysis of the previous")
    assert "released 200/2000 (10 %) vs baseline 200/20000 (1 %)" in reason
    last = (await bench.record()).last
    assert last is not None and last.detail == reason
    # Resumed after a fix: judged on the traffic since the resume, not the failure's.
    await bench.store.write(
        set_paused(paused, FLAG, False), paused.generation, Change("bob", "fixed", "resume", "")
    )
    await bench.schedules.note(FLAG, "resumed", "resumed by bob", restart=True)
    bench.clock.now = at("2025-04-09T00:00")
    await bench.serve(released=(10_000, 50), baseline=(100_000, 500))
    assert flag_of(await bench.step("2025-04-09T00:01")) == (20, ["beta_users"])


async def test_a_refused_removal_pauses_and_keeps_the_flag(bench: Bench) -> None:
    await bench.seed(document(SEED, override={"disabled_for": ["user-7"]}))
    doc = await bench.step("2025-04-22T00:00")
    assert flag_of(doc) == (100, ["all_users"])
    schedule = doc.feature_flags[FLAG].gradual_rollout
    assert schedule is not None and schedule.paused
    assert {t.name: t.weight for t in doc.routes[0].tracks}["v1"] == 100
    reason = (await bench.actions())[-1][2]
    assert reason.startswith("step 4 of 4 (2025-04-22) refused: flag: flag 'new_prompt_v2'")
    assert "disabled_for" in reason


async def test_a_fenced_runner_writes_nothing(bench: Bench) -> None:
    await bench.seed(document(SEED))
    await bench.redis.set(bench.keys.epoch, 5)
    bench.schedules = Schedules(
        bench.redis, bench.keys, bench.store, clock=bench.clock, epoch=lambda: 4
    )
    seeded = await bench.document()
    assert (await bench.step("2025-04-01T00:00")).generation == seeded.generation
    bench.schedules = Schedules(
        bench.redis, bench.keys, bench.store, clock=bench.clock, epoch=lambda: 5
    )
    assert flag_of(await bench.step("2025-04-01T00:01")) == (5, ["internal_users"])


async def test_the_record_is_json_with_a_version(bench: Bench) -> None:
    await bench.seed(document(SEED))
    await bench.step("2025-04-01T00:00")
    raw = await bench.redis.get(bench.keys.flag_schedule(FLAG))
    assert raw is not None
    record = json.loads(raw)
    assert record["version"] >= 2 and record["flag"] == FLAG
    await bench.schedules.forget(FLAG)
    assert await bench.schedules.record(FLAG) is None


async def test_a_record_that_does_not_read_is_skipped_reported_once_and_kept(
    bench: Bench,
) -> None:
    """Its schedule waits (a fresh record would apply the applied steps again); the reason
    is reported once, not every pass, and the record stays as it was, to be looked at."""
    await bench.seed(document(SEED))
    key = bench.keys.flag_schedule(FLAG)
    garbage = json.dumps({"flag": FLAG, "created_at": 0, "applied": "all", "version": 4})
    await bench.redis.set(key, garbage)
    reports: list[tuple[str, BaseException]] = []
    bench.schedules = Schedules(
        bench.redis,
        bench.keys,
        bench.store,
        clock=bench.clock,
        report=lambda flag, exc: reports.append((flag, exc)),
    )
    seeded = await bench.document()
    for when in ("2025-04-01T00:00", "2025-04-01T00:01", "2025-04-08T09:30"):
        assert (await bench.step(when)).generation == seeded.generation
    assert [flag for flag, _ in reports] == [FLAG]
    reason = bench.schedules.unreadable[FLAG]
    assert "applied" in reason and "analysis" in reason and reason in str(reports[0][1])
    assert await bench.redis.get(key) == garbage
    # Resume after a fix: nothing noted on the unreadable record, nothing raised.
    await bench.schedules.note(FLAG, "resumed", "resumed by alice", restart=True)
    assert await bench.redis.get(key) == garbage
    # Deleted by hand, on purpose: the schedule starts afresh and the due steps apply.
    await bench.schedules.forget(FLAG)
    assert flag_of(await bench.step("2025-04-08T09:31")) == (20, ["beta_users"])
    assert bench.schedules.unreadable == {}
