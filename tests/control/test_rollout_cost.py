"""The runner judges ``cost_per_request`` end to end: usage counted as the proxies write it,
priced from the plan, compared with the baseline look after look.

The traffic is fixed, not sampled: each look both tracks serve the same two kinds of request
(a short and a long one), so only the prices differ between the arms, and the runner's
answer cannot depend on a seed.
"""

from __future__ import annotations

from typing import Any

from config.plans import CanaryPlan, parse_plan
from tests.control.rollout_bench import Bench

LOOKS = 30
"""Looks of 10 s each: 5 minutes, inside the phase's 10-minute duration, so the phase is never
done and only a ``rollback_if`` condition can end it."""
SHAPES = ((800, 200), (1_400, 500))
"""(prompt, completion) tokens of the two kinds of request, served in equal numbers."""
PRICE = "{prompt_per_1k: 0.0005, completion_per_1k: 0.0015}"
"""$0.00070 and $0.00145 per request: $0.00108 on average, well under the $0.002 criterion."""


def cost_plan(upstream: str, candidate_price: str) -> CanaryPlan:
    plan = parse_plan(
        f"""canary_deployment:
  route: chat
  candidate: {{track: canary, version: v2, upstreams: ["{upstream}"]}}
  pricing:
    candidate: {candidate_price}
    baseline: {PRICE}
  canary_metrics: {{primary: [], secondary: []}}
  config:
    success_criteria: {{cost_per_request: "< $0.002"}}
  phases:
    - name: "10%"
      traffic: 10
      duration: 10m
      rollback_if: ["cost_per_request > baseline + 10%"]
    - {{name: "100%", traffic: 100}}
  comparison: {{method: statistical, max_tokens_per_request: 4096}}
"""
    )
    assert isinstance(plan, CanaryPlan)
    return plan


def usage_counts(requests: int) -> dict[str, int]:
    """Window fields for ``requests`` requests, all reporting usage, half of each shape."""
    half = requests // 2
    return {
        "requests": requests,
        "usage": requests,
        "tok:prompt": sum(half * p for p, _ in SHAPES),
        "tok:completion": sum(half * c for _, c in SHAPES),
        "tok:prompt_sq": sum(half * p * p for p, _ in SHAPES),
        "tok:completion_sq": sum(half * c * c for _, c in SHAPES),
        "tok:cross": sum(half * p * c for p, c in SHAPES),
    }


async def run(bench: Bench, candidate_price: str) -> tuple[str, dict[str, Any], int]:
    """Start the rollout and look until it leaves ``running`` or ``LOOKS`` have passed:
    (id, last record, looks taken)."""
    rid = (await bench.rollouts.create(cost_plan(bench.upstream, candidate_price), "ci")).id
    await bench.step(rid)
    await bench.ack()
    record: dict[str, Any] = {}
    taken = 0
    while taken < LOOKS:
        taken += 1
        bench.clock.now += 10
        await bench.serve("stable", "v1", **usage_counts(900))
        await bench.serve("canary", "v2", **usage_counts(100))
        record = await bench.step(rid)
        if record["state"]["status"] != "running":
            break
    return rid, record, taken


async def test_a_candidate_priced_half_as_much_again_is_rolled_back(bench: Bench) -> None:
    dearer = "{prompt_per_1k: 0.00075, completion_per_1k: 0.00225}"  # 1.5 × the baseline's
    rid, record, taken = await run(bench, dearer)
    state = record["state"]
    assert state["status"] == "rolled_back", state
    assert taken <= 5, taken  # 100 requests with usage per arm decide; 200 are plenty
    detail = state["history"][-1]["detail"]
    assert detail.startswith("cost_per_request > baseline + 10%: "), detail
    assert await bench.weights() == {"stable": 100, "canary": 0}
    (last, *_) = await bench.rollouts.verdicts(rid, 1)
    cost = {v.role: v.verdict for v in last.verdicts if v.metric == "cost_per_request"}
    assert cost["rollback"] == "fail", last.verdicts


async def test_an_equally_priced_candidate_is_not_rolled_back(bench: Bench) -> None:
    rid, record, taken = await run(bench, PRICE)
    assert taken == LOOKS
    assert record["state"]["status"] == "running"
    assert await bench.weights() == {"stable": 90, "canary": 10}
    (last, *_) = await bench.rollouts.verdicts(rid, 1)
    cost = {v.role: v.verdict for v in last.verdicts if v.metric == "cost_per_request"}
    assert cost == {"rollback": "pass", "success": "pass"}
    assert "rolled_back" not in await bench.events()
