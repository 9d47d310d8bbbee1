"""Counts cover exactly what is judged: a rollout, a phase, an A/B test and the post-deploy
checks each count from their first moment, also when it falls in the middle of a 10 s window
that already holds traffic served before it."""

from __future__ import annotations

from config.plans import ABTestPlan, BigBangPlan, as_canary, parse_plan
from tests.control.rollout_bench import START, Bench, canary_plan


def verdict(record: dict[str, object], metric: str) -> dict[str, object]:
    found = [v for v in record["verdicts"] if v["metric"] == metric]  # type: ignore[attr-defined]
    assert found, record["verdicts"]
    return found[0]  # type: ignore[no-any-return]


async def test_a_phase_counts_only_what_was_served_after_its_weights_were_written(
    bench: Bench,
) -> None:
    # The candidate's track already serves (the demo's canary): 580 requests this window.
    bench.clock.now = START + 3
    await bench.serve("canary", "v0", requests=580, **{"lat:40": 580})
    await bench.serve("stable", "v1", requests=4000, **{"lat:40": 4000})
    plan = canary_plan(
        bench.upstream,
        '  config: {success_criteria: {error_rate: "< 5%", latency_p95: "< 2000ms"}}\n',
    )
    rid = (await bench.rollouts.create(plan, "ci")).id
    bench.clock.now = START + 4
    await bench.step(rid)  # phase 1 written mid-window
    await bench.ack()
    bench.clock.now = START + 6
    first = await bench.step(rid)
    assert verdict(first, "error_rate")["sample"] == 0
    assert verdict(first, "latency_p95")["sample"] == 0
    bench.clock.now = START + 8  # same window, after the start
    await bench.serve("canary", "v2", requests=40, **{"lat:40": 40})
    await bench.serve("stable", "v1", requests=760, **{"lat:40": 760})
    bench.clock.now = START + 12  # the next window
    await bench.serve("canary", "v2", requests=10, **{"lat:40": 10})
    seen = await bench.step(rid)
    assert verdict(seen, "error_rate")["sample"] == 50
    assert verdict(seen, "latency_p95")["sample"] == 50
    compared = verdict(seen, "error_rate_vs_baseline")
    assert compared["sample"] == 50


async def test_an_ab_test_started_mid_window_reports_only_its_own_requests(bench: Bench) -> None:
    plan = parse_plan(
        """ab_testing:
  route: chat
  split: {stable: 50, canary: 50}
  sample_size: 250
  metrics: [error_rate]
"""
    )
    assert isinstance(plan, ABTestPlan)
    bench.clock.now = START + 2
    await bench.serve("stable", "v1", requests=144)  # served under the old weights
    rid = (await bench.rollouts.create(plan, "ci", "ab_test")).id
    bench.clock.now = START + 5
    await bench.step(rid)
    await bench.ack()
    bench.clock.now = START + 7
    await bench.serve("stable", "v1", requests=250)
    await bench.serve("canary", "v0", requests=217)
    held = await bench.step(rid)
    # 394 stable requests sit in the window, but only 250 were the test's; canary is short.
    assert held["state"]["status"] == "running"
    assert held["served"] == {"stable": 250, "canary": 217}
    bench.clock.now = START + 9
    await bench.serve("canary", "v0", requests=33)
    done = await bench.step(rid)
    assert done["state"]["status"] == "completed"
    assert done["report"]["served"] == {"stable": 250, "canary": 250}


async def test_post_deploy_checks_judge_every_request_since_promotion(bench: Bench) -> None:
    plan = parse_plan(
        f"""big_bang_deployment:
  route: chat
  candidate: {{track: canary, version: v2, upstreams: ["{bench.upstream}"]}}
  post_deploy: {{after: 5s, health: false, criteria: {{error_rate: "< 5%"}}}}
"""
    )
    assert isinstance(plan, BigBangPlan)
    rid = (await bench.rollouts.create(as_canary(plan), "ci", "big_bang")).id
    bench.clock.now = START + 1
    await bench.step(rid)
    await bench.ack()
    bench.clock.now = START + 2
    await bench.serve("canary", "v2", requests=70, **{"err:upstream_5xx": 70})  # before
    bench.clock.now = START + 3
    promoted = await bench.step(rid)
    assert promoted["state"]["status"] == "promoted"
    bench.clock.now = START + 6
    await bench.serve("canary", "v2", requests=150)  # mid-window, after promotion
    bench.clock.now = START + 8.5
    await bench.rollouts.step_all()
    post = (await bench.record(rid))["post_deploy"]
    assert post["status"] == "passed", post
    (check,) = post["checks"]
    assert check["check"] == "error_rate"
    assert "150 requests" in check["detail"], check


async def test_a_phase_short_of_traffic_pauses_at_its_deadline_and_says_why(
    bench: Bench,
) -> None:
    plan = canary_plan(bench.upstream, '  config: {success_criteria: {error_rate: "< 1%"}}\n')
    rid = (await bench.rollouts.create(plan, "ci")).id
    await bench.step(rid)
    await bench.ack()
    bench.clock.now += 30
    await bench.serve("canary", "v2", requests=102)
    await bench.serve("stable", "v1", requests=1938)
    baking = await bench.step(rid)
    assert baking["waiting_for"] == "the phase's minimum bake: 30 s left"
    bench.clock.now += 60  # past the bake (60 s), inside max_duration (3 × 60 s)
    held = await bench.step(rid)
    assert held["state"]["status"] == "running"
    (pending,) = [v for v in held["verdicts"] if v["role"] == "success"]
    assert (pending["verdict"], pending["sample"]) == ("inconclusive", 102)
    assert pending["needed"] > 200 and pending["eta_s"] > 0
    assert held["waiting_for"].startswith("enough evidence: error_rate < 1%: ")
    assert "(decides within 1 min 30 s, then on_inconclusive: pause)" in held["waiting_for"]
    bench.clock.now += 91
    paused = await bench.step(rid)
    assert paused["state"]["status"] == "paused"
    reason = paused["state"]["history"][-1]["detail"]
    assert reason.startswith("not enough traffic: 102 of ~3"), reason
    assert reason.endswith("samples for error_rate < 1% (on_inconclusive: pause)"), reason
    assert (await bench.events())[-1] == "paused"  # the webhooks hear of it
    assert await bench.weights() == {"stable": 95, "canary": 5}  # where it stopped
