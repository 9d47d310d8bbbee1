"""A canary that opens with a shadow phase, run end to end against Redis.

The windows are written as the proxies write them: the baseline's live requests under
three-part fields, the candidate's shadow copies under the five-part shadow fields
(``config.metrics.shadow_field_name``). The candidate's live fields carry the opposite of
its copies, so a runner that judged the wrong arm would decide the other way.
"""

from __future__ import annotations

from typing import Any

from config.metrics import shadow_arm, shadow_field_name, window_start
from config.plans import CanaryPlan, parse_plan
from config.schema import Route, RoutingDocument
from config.shadow import Shadow
from control import accumulate, edits
from control.outbox import handover, mirrored
from control.store import Change
from tests.control.rollout_bench import Bench

LOOK_S = 10.0
HEALTHY = {"requests": 300, "lat:40": 300}
FAILING = {"requests": 300, "err:upstream_5xx": 150, "lat:40": 300}


def shadow_plan(upstream: str) -> CanaryPlan:
    plan = parse_plan(
        f"""canary_deployment:
  route: chat
  candidate: {{track: canary, version: v2, upstreams: ["{upstream}"]}}
  phases:
    - name: shadow
      shadow: {{percent: 25, max_in_flight: 8}}
      duration: 60s
      criteria: {{error_rate: "< 5%"}}
      rollback_if: ["error_rate > 20%"]
    - {{name: "10%", traffic: 10, duration: 60s}}
    - {{name: "100%", traffic: 100}}
  canary_metrics: {{primary: [], secondary: []}}
"""
    )
    assert isinstance(plan, CanaryPlan)
    return plan


async def route(bench: Bench) -> tuple[int, Route]:
    document = await bench.store.read()
    assert document is not None
    return document.generation, document.routes[0]


async def copies(bench: Bench, **counts: int) -> None:
    """Counts of the candidate's shadow copies, as a proxy flush adds them."""
    fields = {shadow_field_name("canary", "v2", k): v for k, v in counts.items()}
    await bench.windows.add("chat", fields)


async def started(bench: Bench) -> str:
    """A rollout in its shadow phase, its weights and mirroring written and acked."""
    rid = (await bench.rollouts.create(shadow_plan(bench.upstream), "ci")).id
    await bench.step(rid)
    await bench.ack()
    return rid


async def look(bench: Bench, rid: str, shadow: dict[str, int], live: dict[str, int]) -> Any:
    bench.clock.now += LOOK_S
    await bench.serve("stable", "v1", requests=900, **{"lat:40": 900})
    await copies(bench, **shadow)
    await bench.serve("canary", "v2", **live)
    return await bench.step(rid)


async def test_entering_the_shadow_phase_mirrors_to_the_candidate_at_0_percent(
    bench: Bench,
) -> None:
    rid = await started(bench)
    record = await bench.record(rid)
    assert (record["state"]["status"], record["state"]["phase"]) == ("running", 0)
    generation, chat = await route(bench)
    assert record["state"]["generation"] == generation
    assert chat.shadow == Shadow(track="canary", percent=25, max_in_flight=8)
    assert {t.name: (t.version, t.weight) for t in chat.tracks} == {
        "stable": ("v1", 100),
        "canary": ("v2", 0),
    }
    assert record["state"]["history"][-1]["detail"] == "shadow: 0%, shadow 25%"


async def test_a_healthy_shadow_passes_and_the_first_live_phase_ends_the_mirroring(
    bench: Bench,
) -> None:
    rid = await started(bench)
    mirrored, _ = await route(bench)
    record = await bench.record(rid)
    for _ in range(30):
        record = await look(bench, rid, shadow=HEALTHY, live=FAILING)
        if record["state"]["phase"] != 0:
            break
    state = record["state"]
    assert (state["status"], state["phase"]) == ("running", 1), state["history"][-3:]
    generation, chat = await route(bench)
    # One write: the candidate's weight raised and the mirroring removed together.
    assert generation == mirrored + 1 == state["generation"]
    assert chat.shadow is None
    assert {t.name: t.weight for t in chat.tracks} == {"stable": 90, "canary": 10}
    looks = await bench.rollouts.verdicts(rid, 100)
    shadow_look = next(look for look in looks if look.phase == 0)
    judged = {(v.metric, v.role): v for v in shadow_look.verdicts}
    assert judged["error_rate", "success"].verdict == "pass"
    assert judged["error_rate", "success"].value == 0.0  # the copies, not the live 50 %
    assert {"shadow:error_rate", "shadow:capacity"} <= set(record["tests"])


async def test_a_failing_shadow_is_rolled_back_in_its_phase_and_stops_mirroring(
    bench: Bench,
) -> None:
    rid = await started(bench)
    mirrored, _ = await route(bench)
    record = await look(bench, rid, shadow=FAILING, live=HEALTHY)
    state = record["state"]
    assert (state["status"], state["phase"]) == ("rolled_back", 0), state["history"][-2:]
    assert state["history"][-1]["detail"].startswith("error_rate > 20%: ")
    generation, chat = await route(bench)
    assert generation == mirrored + 1
    assert chat.shadow is None
    assert {t.name: t.weight for t in chat.tracks} == {"stable": 100, "canary": 0}
    assert record.get("desired") is None


async def test_pause_keeps_the_mirroring_and_abort_removes_it(bench: Bench) -> None:
    rid = await started(bench)
    await bench.rollouts.command(rid, "pause", "ci")
    _, chat = await route(bench)
    assert chat.shadow is not None
    await bench.rollouts.command(rid, "abort", "ci")
    _, chat = await route(bench)
    assert chat.shadow is None
    assert {t.name: t.weight for t in chat.tracks} == {"stable": 100, "canary": 0}
    assert (await bench.record(rid))["state"]["status"] == "aborted"


async def test_a_rollout_ending_without_its_weights_still_stops_mirroring(bench: Bench) -> None:
    """A track given weight by hand makes the rollback's weights unwritable: the rollout
    keeps the reason, and its mirroring goes in a write of its own."""
    rid = await started(bench)
    document = await bench.store.read()
    assert document is not None
    body = {"version": "v1", "upstreams": [bench.upstream], "weight": 0}
    edited = edits.put_track(document, "chat", "other", body)
    edited = edits.set_weights(edited, "chat", {"stable": 80, "other": 20})
    await bench.store.write(edited, document.generation, Change("ops", "by hand", "put", "x"))
    await bench.ack()
    record = await look(bench, rid, shadow=FAILING, live=HEALTHY)
    assert record["state"]["status"] == "rolled_back", record["state"]["history"][-2:]
    assert "weights must add up to 100" in record["weights_error"]
    _, chat = await route(bench)
    assert chat.shadow is None
    assert {t.name: t.weight for t in chat.tracks} == {"stable": 80, "canary": 0, "other": 20}


async def test_only_a_rollouts_accumulators_read_the_shadow_copies(bench: Bench) -> None:
    await bench.serve("canary", "v2", requests=5)
    await copies(bench, requests=7)
    _, _, live = await bench.windows.read("chat", 60)
    assert set(live) == {("canary", "v2")}
    ((_, merged),) = await bench.windows.read_each("chat", *[window_start(bench.clock())] * 2)
    assert accumulate.arm(merged, "canary").requests == 5
    assert accumulate.arm(merged, shadow_arm("canary")).requests == 7
    # A version's live counts (the post-deploy checks') leave its shadow copies out.
    assert accumulate.arm(merged, "@v2").requests == 5


def test_ending_the_mirroring_removes_the_rollouts_own_only() -> None:
    document = RoutingDocument.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "tracks": [
                        {"name": n, "version": "v1", "upstreams": ["http://a"], "weight": w}
                        for n, w in (("stable", 100), ("canary", 0), ("judge", 0))
                    ],
                    "shadow": {"track": "judge", "percent": 5},
                }
            ]
        }
    )
    ending = handover(shadow_plan("http://127.0.0.1:9002"))  # a promotion ends it too
    assert ending.end_shadow == "canary"
    assert mirrored(document, "chat", ending) is document  # someone else's, to another track
    own = mirrored(document, "chat", ending.model_copy(update={"end_shadow": "judge"}))
    assert own.routes[0].shadow is None
