"""The rollout runner stepped by hand against a real Redis, with an injected clock.

Metric windows are written as the proxies would (``WindowReader.add``), acks as the watchers
would, so each test decides exactly what the runner sees at each step.
"""

from __future__ import annotations

import json

import pytest

from config.plans import ABTestPlan, BigBangPlan, as_canary, parse_plan
from config.records import evolve
from control import accumulate
from control.edits import put_track, set_weights
from control.rollouts import Rollouts, UnknownItem
from control.store import Change
from control.strategies.canary import CommandRefused
from tests.control.rollout_bench import Bench, canary_plan


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
    record = (await bench.rollouts.create(plan, "ci")).stored()
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
    done = attested.checklist.required["tests_passed"]
    assert done is not None
    assert (done.by, done.how, done.note) == ("ci-bot", "attested", "run 1234 green")
    assert attested.warnings == ["recommended checklist item 'security_review' is not confirmed"]
    started = await bench.step(rid)
    assert started["state"]["status"] == "running"
    assert await bench.weights() == {"stable": 95, "canary": 5}


async def test_a_decision_overtaken_by_a_command_never_reaches_the_weights(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    await bench.step(rid)
    assert await bench.weights() == {"stable": 95, "canary": 5}
    # The runner decided the next phase and saved it, but had not written the weights yet…
    stale = await bench.model(rid)
    desired = {"weights": {"canary": 100, "stable": 0}, "reason": "next phase"}
    stale = await bench.rollouts.records.save(evolve(stale, desired=desired))
    # …when an operator aborted: the abort's weights are written, the runner's never are.
    aborted = await bench.rollouts.command(rid, "abort")
    assert aborted is not None and aborted.state.status == "aborted"
    await bench.rollouts._flush(stale)
    assert await bench.weights() == {"stable": 100, "canary": 0}
    await bench.rollouts.step_all()
    assert await bench.weights() == {"stable": 100, "canary": 0}


async def test_weights_decided_before_a_crash_are_written_by_the_next_step(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    await bench.step(rid)
    record = await bench.record(rid)
    record["desired"] = {"weights": {"canary": 100, "stable": 0}, "reason": "next phase"}
    await bench.save(record)  # the process died here
    restarted = Rollouts(bench.redis, bench.keys, bench.store, bench.windows, clock=bench.clock)
    await restarted.step_all()
    assert await bench.weights() == {"stable": 0, "canary": 100}
    after = await bench.record(rid)
    assert after["desired"] is None
    assert after["state"]["generation"] == await bench.store.generation()


async def test_every_change_of_state_is_an_event_for_the_webhooks(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    await bench.step(rid)
    await bench.rollouts.command(rid, "pause")
    await bench.rollouts.command(rid, "resume")
    await bench.rollouts.command(rid, "abort")
    assert await bench.events() == ["phase", "paused", "resumed", "aborted"]
    _, fields = (await bench.redis.xrange(bench.keys.events))[0]
    event = json.loads(fields["event"])
    assert (event["rollout"], event["route"], event["version"]) == (rid, "chat", "v2")


async def test_more_hallucinations_than_the_baseline_roll_back(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
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
    assert looks and looks[0].verdicts[0].role == "rollback"


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
    rid = (await bench.rollouts.create(plan, "ci", "ab_test")).id
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
    rid = (await bench.rollouts.create(as_canary(plan), "ci", "big_bang")).id
    await bench.step(rid)
    await bench.ack()
    promoted = await bench.step(rid)
    assert promoted["state"]["status"] == "promoted"
    assert promoted["post_deploy"]["status"] == "scheduled"
    assert promoted["waiting_for"].startswith("post-deploy checks in 1 min")
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
    rid = (await bench.rollouts.create(plan, "ci", "ab_test")).id
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
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
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


async def test_promotion_hands_the_new_version_to_the_baseline_track(bench: Bench) -> None:
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    await bench.step(rid)
    await bench.ack()
    bench.clock.now += 61
    await bench.step(rid)  # 5 % → 100 %
    assert await bench.weights() == {"stable": 0, "canary": 100}
    await bench.ack()
    bench.clock.now += 10
    promoted = await bench.step(rid)
    assert promoted["state"]["status"] == "promoted"
    assert promoted["desired"] is None
    # Everyone is on the new version either way; now the baseline track carries it, so the
    # same plan (baseline stable, candidate canary) runs the next version.
    assert await bench.weights() == {"stable": 100, "canary": 0}
    document = await bench.store.read()
    assert document is not None
    stable = document.routes[0].tracks[0]
    assert (stable.name, stable.version, stable.upstreams) == ("stable", "v2", [bench.upstream])
    kinds = [e["kind"] for e in promoted["state"]["history"]]
    assert kinds[-2:] == ["promoted", "baseline_updated"]
    assert await bench.redis.get(bench.keys.active_rollout("chat")) is None


async def test_a_plan_may_keep_the_candidate_track_after_promotion(bench: Bench) -> None:
    plan = canary_plan(bench.upstream, "  after_promotion: candidate\n")
    rid = (await bench.rollouts.create(plan, "ci")).id
    await bench.step(rid)
    await bench.ack()
    bench.clock.now += 61
    await bench.step(rid)
    await bench.ack()
    bench.clock.now += 10
    assert (await bench.step(rid))["state"]["status"] == "promoted"
    assert await bench.weights() == {"stable": 0, "canary": 100}


async def test_a_candidate_track_with_users_is_registered_at_zero(bench: Bench) -> None:
    document = await bench.store.read()
    assert document is not None
    ten = set_weights(document, "chat", {"stable": 90, "canary": 10})
    await bench.store.write(ten, document.generation, Change("ops", "", "set", "w"))
    plan = canary_plan(bench.upstream)
    # The new version reaches nobody before its checks and its first phase: the canary
    # track's 10 % go back to stable while v2 is registered.
    await bench.rollouts._prep.register_candidate(plan)
    assert await bench.weights() == {"stable": 100, "canary": 0}
    registered = await bench.store.read()
    assert registered is not None and registered.routes[0].tracks[1].version == "v2"


async def test_a_record_that_does_not_read_never_stops_the_others(bench: Bench) -> None:
    await bench.redis.sadd(bench.keys.rollouts, "chat-broken")
    await bench.redis.set(bench.keys.rollout("chat-broken"), '{"id": "chat-broken", ')
    rid = (await bench.rollouts.create(canary_plan(bench.upstream), "ci")).id
    await bench.rollouts.step_all()
    assert (await bench.record(rid))["state"]["status"] == "running"
    assert [r.id for r in await bench.rollouts.records.active()] == [rid]


async def test_a_record_stored_with_fraction_thresholds_keeps_running(bench: Bench) -> None:
    """Plans may no longer write a rate as a bare fraction (``< 0.01`` read as 1 % was easy to
    confuse with ``< 1``); records stored before that rule still load and step."""
    plan = canary_plan(bench.upstream, '  config: {success_criteria: {error_rate: "< 5%"}}\n')
    rid = (await bench.rollouts.create(plan, "ci")).id
    record = await bench.record(rid)
    record["plan"]["config"]["success_criteria"] = {"error_rate": "< 0.05"}
    record["plan"]["phases"][0]["rollback_if"] = ["error_rate > 0.2"]
    del record["plan"]["after_promotion"]  # stored before it existed
    await bench.save(record)
    stepped = await bench.step(rid)
    assert stepped["state"]["status"] == "running"
    await bench.ack()
    bench.clock.now += 10
    await bench.serve("canary", "v2", requests=200)
    looked = await bench.step(rid)
    assert {v["threshold"] for v in looked["verdicts"] if not v["metric"].endswith("baseline")} == {
        "< 5%",
        "> 20%",
    }
    aborted = await bench.rollouts.command(rid, "abort")
    assert aborted is not None and aborted.state.status == "aborted"
