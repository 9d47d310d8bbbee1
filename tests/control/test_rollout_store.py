"""Rollout records in Redis: quarantine, the active index and the archive, pages, fencing."""

from __future__ import annotations

import json

import pytest

from control.leadership import PASS_EPOCH
from control.rollout_store import RolloutStore
from control.rollouts import Rollouts
from control.store import Fenced
from tests.control.rollout_bench import Bench, canary_plan


async def finished(bench: Bench) -> str:
    """A rollout that ran and was aborted: over, once its last weights are written."""
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    await bench.step(rid)
    await bench.rollouts.command(rid, "abort")
    return str(rid)


async def test_a_garbage_record_is_quarantined_and_the_runner_goes_on(bench: Bench) -> None:
    failures: list[tuple[str, str]] = []
    runner = Rollouts(
        bench.redis,
        bench.keys,
        bench.store,
        bench.windows,
        clock=bench.clock,
        report=lambda rid, exc: failures.append((rid, str(exc))),
    )
    await bench.redis.sadd(bench.keys.rollouts, "chat-truncated", "chat-wrongtype")
    await bench.redis.set(bench.keys.rollout("chat-truncated"), '{"id": "chat-truncated", ')
    garbage = {"id": "chat-wrongtype", "version": 3, "route": "chat", "state": "running"}
    await bench.redis.set(bench.keys.rollout("chat-wrongtype"), json.dumps(garbage))
    rid = (await runner.create(canary_plan(bench.upstream), "ci")).id

    await runner.step_all()
    assert (await bench.record(rid))["state"]["status"] == "running"  # judged all the same
    assert sorted(r for r, _ in failures) == ["chat-truncated", "chat-wrongtype"]
    quarantined = await runner.records.quarantined()
    assert [q.id for q in quarantined] == ["chat-truncated", "chat-wrongtype"]
    assert all(q.reason and q.at == bench.clock() for q in quarantined)
    # An entry written by hand that is JSON but no object is listed, not a 500.
    await bench.redis.hset(bench.keys.rollouts_quarantine, "chat-list", "[1, 2]")
    listed = await runner.records.quarantined()
    assert (listed[0].id, listed[0].reason) == ("chat-list", "(unreadable entry)")
    # Out of the index: the next pass does not trip on them again. The records stay as they
    # were, to be looked at.
    assert await bench.redis.smembers(bench.keys.rollouts) == {rid}
    await runner.step_all()
    assert len(failures) == 2
    assert await bench.redis.get(bench.keys.rollout("chat-wrongtype")) == json.dumps(garbage)


async def test_a_rollout_that_is_over_moves_to_the_archive(bench: Bench) -> None:
    done = await finished(bench)
    running = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    await bench.rollouts.step_all()
    assert await bench.redis.smembers(bench.keys.rollouts) == {running}
    assert await bench.redis.zrange(bench.keys.rollouts_archive, 0, -1) == [done]
    # Still readable, by id and in the list.
    assert (await bench.record(done))["state"]["status"] == "aborted"
    page, after = await bench.rollouts.records.page(10, None)
    assert [r.id for r in page] == [running, done] and after is None


async def test_archived_rollouts_are_deleted_after_the_retention(bench: Bench) -> None:
    done = await finished(bench)
    await bench.rollouts.step_all()
    assert await bench.redis.exists(bench.keys.rollout(done))
    bench.clock.now += bench.rollouts.records.retention_s + 1
    await bench.rollouts.step_all()
    assert not await bench.redis.exists(bench.keys.rollout(done))
    assert not await bench.redis.exists(bench.keys.rollout_verdicts(done))
    assert await bench.redis.zcard(bench.keys.rollouts_archive) == 0


async def test_pages_of_the_archive_are_newest_first_and_miss_nothing_on_ties(
    bench: Bench,
) -> None:
    store = RolloutStore(bench.redis, bench.keys, bench.clock)
    template = await bench.record(await finished(bench))
    await bench.rollouts.step_all()
    await bench.redis.delete(bench.keys.rollouts_archive)
    ended = {}
    for i in range(25):
        rid = f"chat-{i:04x}"
        at = 1000.0 + i // 4  # four rollouts end at each time: ties
        ended[rid] = at
        record = {**template, "id": rid, "state": {**template["state"], "history": []}}
        await bench.redis.set(bench.keys.rollout(rid), json.dumps(record))
        await bench.redis.zadd(bench.keys.rollouts_archive, {rid: at})
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        page, cursor = await store.page(3, cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == sorted(ended, key=lambda rid: (ended[rid], rid), reverse=True)


async def test_a_save_under_a_superseded_epoch_is_fenced(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    record = await bench.record(rid)
    await bench.redis.set(bench.keys.epoch, 7)  # another control plane took the lease
    token = PASS_EPOCH.set(6)
    try:
        with pytest.raises(Fenced):
            await bench.save({**record, "waiting_for": "deposed"})
    finally:
        PASS_EPOCH.reset(token)
    assert (await bench.record(rid))["version"] == record["version"]
    # The leader's own epoch saves; a command (no epoch) saves whoever leads.
    token = PASS_EPOCH.set(7)
    try:
        record = await bench.save(record)
    finally:
        PASS_EPOCH.reset(token)
    record = await bench.save(record)
    assert (await bench.record(rid))["version"] == record["version"] == 3


async def test_a_pass_of_a_deposed_leader_changes_nothing(bench: Bench) -> None:
    deposed = Rollouts(
        bench.redis, bench.keys, bench.store, bench.windows, clock=bench.clock, epoch=lambda: 3
    )
    rid = (await deposed.create(canary_plan(bench.upstream), "ci")).id
    await bench.redis.set(bench.keys.epoch, 4)
    before = await bench.record(rid)
    generation = await bench.store.generation()
    await deposed.step_all()
    assert await bench.record(rid) == before
    assert await bench.store.generation() == generation


async def test_a_record_from_another_version_is_read_not_quarantined(bench: Bench) -> None:
    """An older version did not write some fields (their defaults stand in), a newer one
    writes fields and event details this one does not know (its fields are kept; the event
    details go when this version rewrites the history): neither is a broken record, and the
    runner steps it."""
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    stored = json.loads(await bench.redis.get(bench.keys.rollout(rid)))
    del stored["desired"], stored["report"], stored["waiting_for"]
    stored["state"]["history"] = [{"at": 1.0, "kind": "created", "detail": "", "by": "ci"}]
    stored["shadow"] = {"percent": 5}
    await bench.redis.set(bench.keys.rollout(rid), json.dumps(stored))
    await bench.rollouts.step_all()
    assert await bench.rollouts.records.quarantined() == []
    record = await bench.record(rid)
    assert record["state"]["status"] == "running"
    assert record["shadow"] == {"percent": 5}
    assert record["state"]["history"][0]["kind"] == "created"


async def test_an_index_entry_without_a_record_is_dropped_not_quarantined(
    bench: Bench,
) -> None:
    await bench.redis.sadd(bench.keys.rollouts, "chat-never-saved")
    await bench.rollouts.step_all()
    assert await bench.redis.smembers(bench.keys.rollouts) == set()
    assert await bench.rollouts.records.quarantined() == []


async def test_archiving_frees_the_route_if_the_end_did_not(bench: Bench) -> None:
    done = await finished(bench)
    # The abort's save wrote the end, and Redis went away before the route was freed.
    await bench.redis.set(bench.keys.active_rollout("chat"), done)
    await bench.rollouts.step_all()
    assert await bench.redis.get(bench.keys.active_rollout("chat")) is None
    assert (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id != done
