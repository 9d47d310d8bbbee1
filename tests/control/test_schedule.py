"""The flag schedule runner stepped by hand against a real Redis, with an injected clock.

Metric windows are written as the proxies' flushers would (``WindowReader.add``, with the
per-flag fields), so each test decides what the analysis sees.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from config.flag_schedule import Schedule, ScheduleStep, zone_of
from config.keys import Keys, StoredDocument
from config.metrics import ERROR_CLASSES, TrackWindow, field_name, flag_field_name
from config.schema import RoutingDocument
from config.targeting import explain
from control import edits
from control.analysis.verdict import Verdict
from control.edits import EditError
from control.schedule import ACTOR, Schedules
from control.schedule_gate import judge
from control.schedule_steps import applied_count, apply_step, in_effect, set_paused, step_key
from control.store import Change, DocumentStore
from control.windows import WindowReader
from splitgate.redis_server import RedisServer

TOKYO = zone_of("Asia/Tokyo")  # loaded here, outside the event loop, and kept
FLAG = "new_prompt_v2"
USERS = [f"user-{i}" for i in range(2000)]


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def document(schedule: dict[str, Any], **flag: Any) -> RoutingDocument:
    return RoutingDocument.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "stickiness": ["header:x-user-id"],
                    "baseline": "v1",
                    "tracks": [
                        {
                            "name": "v1",
                            "version": "v1.0.0",
                            "upstreams": ["http://a:1"],
                            "weight": 100,
                        },
                        {
                            "name": "v2",
                            "version": "v2.0.0",
                            "upstreams": ["http://b:1"],
                            "weight": 0,
                        },
                        {
                            "name": "v3",
                            "version": "v3.0.0",
                            "upstreams": ["http://c:1"],
                            "weight": 0,
                        },
                    ],
                }
            ],
            "segments": {
                "internal_users": {"conditions": [{"type": "user_group", "values": ["internal"]}]},
                "beta_users": {"conditions": [{"type": "user_group", "values": ["beta"]}]},
            },
            "feature_flags": {
                FLAG: {
                    "route": "chat",
                    "track": "v2",
                    "rollout_percentage": 25,
                    "target_groups": ["beta_users"],
                    "gradual_rollout": schedule,
                    **flag,
                }
            },
        }
    )


SEED = {
    "schedule": [
        {"date": "2025-04-01", "percentage": 5, "target": "internal_users"},
        {"date": "2025-04-08T09:30", "percentage": 20, "target": "beta_users"},
        {"date": "2025-04-15", "percentage": 100, "target": "all_users"},
        {"date": "2025-04-22", "percentage": 100, "target": "all_users", "action": "remove_flag"},
    ]
}


class Clock:
    def __init__(self) -> None:
        self.now = at("2025-03-01T00:00")

    def __call__(self) -> float:
        return self.now


@dataclass
class Bench:
    redis: Any
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

    async def record(self) -> dict[str, Any]:
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


# The analysis gate, pure ------------------------------------------------------------------


def window(requests: int, errors: int) -> TrackWindow:
    counts = TrackWindow(requests=requests)
    counts.errors = {name: 0 for name in ERROR_CLASSES} | {"upstream_5xx": errors}
    return counts


@pytest.mark.parametrize(
    ("released", "baseline", "verdict", "reason"),
    [
        (window(99, 0), window(10_000, 10), Verdict.INCONCLUSIVE, "99 released requests"),
        (window(10_000, 50), window(100_000, 500), Verdict.PASS, "below 1.5 × the baseline's"),
        (window(2_000, 200), window(20_000, 200), Verdict.FAIL, "worse than the baseline's"),
        (window(500, 10), window(5_000, 50), Verdict.INCONCLUSIVE, "not yet clear"),
        # The same rate, but 25 errors cannot show it is not 1.5 × worse: it waits.
        (window(5_000, 25), window(50_000, 250), Verdict.INCONCLUSIVE, "not yet clear"),
        (window(1_000, 0), window(50, 0), Verdict.PASS, "too little baseline traffic"),
        (window(1_000, 80), window(50, 0), Verdict.FAIL, "too little baseline traffic"),
        (
            window(1_000, 10),
            None,
            Verdict.PASS,
            "upper bound 2.2 %) over 1,000 requests, below 5 %",
        ),
    ],
)
def test_judge(
    released: TrackWindow, baseline: TrackWindow | None, verdict: Verdict, reason: str
) -> None:
    result, _ = judge(released, baseline, None)
    assert result.verdict is verdict, result
    assert reason in result.reason


def test_the_gate_counts_each_request_once_however_often_it_looks() -> None:
    """Each look feeds the test only what arrived since the last: looking again at the same
    totals adds nothing, so the verdict does not drift toward a decision by itself."""
    released, baseline = window(2_000, 30), window(20_000, 200)
    first, slot = judge(released, baseline, None)
    for _ in range(50):
        again, slot = judge(released, baseline, slot)
        assert again.verdict is first.verdict and again.value == first.value


def test_a_healthy_audience_looked_at_every_pass_is_rarely_paused() -> None:
    """300 schedules whose audience errs exactly as often as the baseline (2 %), looked at
    after every 100 released requests up to 60 times: the gate may look forever and still
    pauses a healthy step at most about ALPHA of the time (1 %), and lets nearly all pass.
    Seeded: the same counts every run."""
    rng = random.Random(7)
    paused = passed = 0
    for _ in range(300):
        slot = None
        n = e = bn = be = 0
        for _ in range(60):
            n, bn = n + 100, bn + 1_000
            e += sum(rng.random() < 0.02 for _ in range(100))
            be += sum(rng.random() < 0.02 for _ in range(1_000))
            result, slot = judge(window(n, e), window(bn, be), slot)
            if result.verdict in (Verdict.FAIL, Verdict.PASS):
                break
        paused += result.verdict is Verdict.FAIL
        passed += result.verdict is Verdict.PASS
    assert paused <= 6  # 2 % of 300, twice ALPHA: the seeded run pauses 1
    assert passed >= 270


# Pure parts of the schedule -----------------------------------------------------------------


def test_progress_is_counted_by_content_and_an_edit_undoes_what_follows() -> None:
    schedule = Schedule.model_validate(SEED)
    keys = [step_key(s) for s in schedule.schedule[:2]]
    assert applied_count(schedule, keys) == 2
    later_edit = Schedule.model_validate(
        {"schedule": [*SEED["schedule"][:3], {**SEED["schedule"][3], "date": "2025-05-01"}]}
    )
    assert applied_count(later_edit, keys) == 2
    earlier_edit = Schedule.model_validate(
        {"schedule": [{**SEED["schedule"][0], "percentage": 6}, *SEED["schedule"][1:]]}
    )
    assert applied_count(earlier_edit, keys) == 0


def test_a_step_in_effect() -> None:
    doc = document(SEED)
    step = ScheduleStep.model_validate({"date": "2025-01-01", "percentage": 25})
    assert in_effect(doc, FLAG, step)
    assert not in_effect(doc, FLAG, step.model_copy(update={"target": "internal_users"}))
    assert in_effect(doc, FLAG, step.model_copy(update={"target": "beta_users"}))
    removal = ScheduleStep.model_validate(SEED["schedule"][3])
    assert not in_effect(doc, FLAG, removal)
    assert in_effect(edits.delete_flag(doc, FLAG), FLAG, removal)


def assignments(doc: RoutingDocument) -> dict[tuple[str, str], str | None]:
    """(user, group) → track for every user, each with no group, beta and qa."""
    out = {}
    for user in USERS:
        for group in ("", "beta", "qa"):
            attributes = {"user_group": group} if group else {}
            out[(user, group)] = explain(doc, "chat", user, attributes).track
    return out


def test_removal_moves_nobody_when_the_flag_already_decides_everyone() -> None:
    # An earlier flag sends qa users to v3: they are not on the released track and stay.
    testers = {
        "route": "chat",
        "track": "v3",
        "conditions": [{"type": "user_group", "values": ["qa"]}],
    }
    doc = document(SEED, rollout_percentage=100, target_groups=["all_users"])
    flags = {"testers": testers, **{n: f.model_dump() for n, f in doc.feature_flags.items()}}
    doc = RoutingDocument.model_validate({**doc.model_dump(), "feature_flags": flags})
    removal = ScheduleStep.model_validate(SEED["schedule"][3])
    after = apply_step(doc, FLAG, removal)
    assert FLAG not in after.feature_flags
    assert {t.name: t.weight for t in after.routes[0].tracks} == {"v1": 0, "v2": 100, "v3": 0}
    before_tracks, after_tracks = assignments(doc), assignments(after)
    assert before_tracks == after_tracks
    assert {before_tracks[(u, "qa")] for u in USERS} == {"v3"}
    # A request without a sticky key: released at 100 % before, the whole split after.
    assert explain(doc, "chat", None, {}).track == "v2"
    assert after.routes[0].bucket_layout() == [("v2", 10_000)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"enabled": False}, "is disabled"),
        ({"override": {"disabled_for": ["user-7"]}}, "override.disabled_for"),
        ("later", "'late' would take users off 'v2'"),
    ],
)
def test_removal_that_would_move_someone_is_refused(change: Any, reason: str) -> None:
    doc = document(SEED, rollout_percentage=100, target_groups=["all_users"])
    flags = {n: f.model_dump() for n, f in doc.feature_flags.items()}
    if change == "later":
        # Evaluated after the flag: once it is gone, it would take beta users to v3.
        flags["late"] = {"route": "chat", "track": "v3", "target_groups": ["beta_users"]}
    else:
        flags[FLAG] |= change
    doc = RoutingDocument.model_validate({**doc.model_dump(), "feature_flags": flags})
    with pytest.raises(EditError) as caught:
        apply_step(doc, FLAG, ScheduleStep.model_validate(SEED["schedule"][3]))
    assert caught.value.status == 409 and reason in str(caught.value)


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
    assert [entry["date"] for entry in (await bench.record())["applied"]] == [
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
    assert record["last"]["outcome"] == "in_effect" and len(record["applied"]) == 1
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
    assert record["last"]["outcome"] == "waiting"
    assert "50 released requests since the previous step" in record["last"]["detail"]
    assert not waiting.feature_flags[FLAG].gradual_rollout.paused  # type: ignore[union-attr]
    bench.clock.now = at("2025-04-08T10:00")
    await bench.serve(released=(20_000, 100), baseline=(200_000, 1_000))
    passed = await bench.step("2025-04-08T10:01")
    assert flag_of(passed) == (20, ["beta_users"])
    assert (await bench.record())["last"]["outcome"] == "applied"


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
    assert (await bench.record())["last"]["detail"] == reason
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
    record = json.loads(raw)
    assert record["version"] >= 2 and record["flag"] == FLAG
    await bench.schedules.forget(FLAG)
    assert await bench.schedules.record(FLAG) is None
