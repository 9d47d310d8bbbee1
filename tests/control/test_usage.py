"""Tokens and cost per request: the plan syntax, the bounds, the pure look, the comparison
with the baseline (seeded simulations), the 429 rule and the A/B report."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from config.loader import ConfigError
from config.metrics import TrackWindow
from config.plans import ABTestPlan, CanaryPlan, load_plan, parse_plan
from config.pricing import Price
from config.records import SequentialSlot
from config.thresholds import parse_condition, parse_threshold
from control.analysis import usage_bounds as ub
from control.analysis.capacity import SLOT
from control.analysis.compare import compare
from control.analysis.verdict import Verdict
from control.looks import Counts, fresh_tests, look
from control.strategies.canary import Observation, State, Status, tick

PLAN = """
canary_deployment:
  route: chat
  candidate: {track: canary, version: v2, upstreams: ["http://127.0.0.1:9"]}
  pricing:
    candidate: {prompt_per_1k: 0.5, completion_per_1k: 1.5}
    baseline: {prompt_per_1k: 0.5, completion_per_1k: 1.5}
  canary_metrics: {primary: [], secondary: []}
  config:
    success_criteria: {tokens_per_request: "< 2000"}
  phases:
    - name: one
      traffic: 10
      duration: 1m
      rollback_if:
        - cost_per_request > baseline + 10%
"""


def plan(text: str = PLAN) -> CanaryPlan:
    parsed = parse_plan(text, "plan.yaml")
    assert isinstance(parsed, CanaryPlan)
    return parsed


def test_thresholds_for_tokens_and_cost() -> None:
    assert parse_threshold("< 900", "tokens_per_request").value == 900
    assert parse_threshold("< 900 tokens", "tokens_per_request").value == 900
    assert parse_threshold("< $0.002", "cost_per_request").value == 0.002
    relative = parse_threshold("< baseline + 10%", "cost_per_request")
    assert relative.relative and relative.value == pytest.approx(1.1)
    assert parse_threshold("<= baseline", "tokens_per_request").value == 1.0
    assert str(parse_condition("tokens_per_request > baseline + 30%")) == (
        "tokens_per_request > baseline + 30%"
    )
    for text, metric in [
        ("< 1%", "tokens_per_request"),
        ("< $5", "tokens_per_request"),
        ("< 5 tokens", "cost_per_request"),
        ("< baseline + 10%", "error_rate"),
        ("< baseline + 2000%", "cost_per_request"),
    ]:
        with pytest.raises(ValueError):
            parse_threshold(text, metric)


def test_plan_with_pricing_loads_and_bad_pricing_names_the_field() -> None:
    p = plan()
    assert p.pricing["candidate"].per_token() == (0.0005, 0.0015)
    assert not p.comparison.count_429_as_errors and p.capacity.rate() == 0.05
    no_baseline_price = PLAN.replace(
        "    baseline: {prompt_per_1k: 0.5, completion_per_1k: 1.5}\n", ""
    )
    with pytest.raises(ConfigError, match=r"plan.yaml:\d+: .*needs pricing for baseline"):
        plan(no_baseline_price)
    negative = PLAN.replace("prompt_per_1k: 0.5,", "prompt_per_1k: -1,", 1)
    with pytest.raises(ConfigError, match="prompt_per_1k"):
        plan(negative)
    with pytest.raises(ConfigError, match="max_429_rate"):
        plan(PLAN + "  capacity: {max_429_rate: 5}\n")
    with pytest.raises(ConfigError, match=r"comparison\.method: statistical"):
        plan(PLAN + "  comparison: {method: none}\n")


def test_the_shipped_cost_plan_loads() -> None:
    shipped = load_plan(Path(__file__).parents[2] / "config/examples/plans/canary-cost.yaml")
    assert isinstance(shipped, CanaryPlan) and shipped.comparison.max_tokens_per_request == 16384


def test_ab_plan_needs_a_price_per_track_for_cost() -> None:
    text = """
ab_testing:
  route: chat
  split: {a: 50, b: 50}
  duration: 1h
  metrics: [cost_per_request]
  pricing: {a: {prompt_per_1k: 1, completion_per_1k: 2}}
"""
    with pytest.raises(ConfigError, match="needs pricing for b"):
        parse_plan(text, "ab.yaml")
    ok = parse_plan(text.replace("}}\n", "}, b: {prompt_per_1k: 1, completion_per_1k: 2}}\n"))
    assert isinstance(ok, ABTestPlan)


def test_post_deploy_criteria_refuse_tokens() -> None:
    text = PLAN + "  post_deploy: {criteria: {tokens_per_request: '< 900'}}\n"
    with pytest.raises(ConfigError, match="not a post-deploy criterion"):
        plan(text)


def usage_window(
    rng: random.Random, n: int, mean: float, requests: int | None = None
) -> TrackWindow:
    """``n`` requests with lognormal prompt and completion tokens (CV 0.6), mean ``mean``."""
    w = TrackWindow(requests=requests if requests is not None else n, usage_reported=n)
    for _ in range(n):
        total = rng.lognormvariate(math.log(mean) - 0.18, 0.6)
        p, c = round(total * 0.7), round(total * 0.3)
        w.prompt_tokens += p
        w.completion_tokens += c
        w.prompt_sq += p * p
        w.completion_sq += c * c
        w.cross += p * c
    return w


def test_bounds_hold_the_mean_and_need_squares() -> None:
    rng = random.Random(7)
    w = usage_window(rng, 2_000, 1_000)
    s = ub.Sums(w.prompt_tokens + w.completion_tokens, 0, w.usage_reported, 32_768)
    assert not ub.shows(s, 10.0, 0.05, above=True)  # squares missing: no evidence at all
    full = ub.Sums(
        w.prompt_tokens + w.completion_tokens,
        w.prompt_sq + 2 * w.cross + w.completion_sq,
        w.usage_reported,
        32_768,
    )
    low, high = ub.lower(full, 0.05), ub.upper(full, 0.05)
    assert 850 < low < full.mean < high < 1_400
    assert ub.shows(full, 850, 0.05, above=True)
    assert not ub.shows(full, 1_000, 0.05, above=False)


def add(a: TrackWindow, b: TrackWindow) -> TrackWindow:
    out = TrackWindow(
        requests=a.requests + b.requests, usage_reported=a.usage_reported + b.usage_reported
    )
    for name in ("prompt_tokens", "completion_tokens", "prompt_sq", "completion_sq", "cross"):
        setattr(out, name, getattr(a, name) + getattr(b, name))
    out.errors = {k: a.errors.get(k, 0) + b.errors.get(k, 0) for k in {*a.errors, *b.errors}}
    return out


def looks_until_rollback(seed: int, ratio: float, looks: int = 60) -> int | None:
    """A canary at ~10 %: 60 candidate and 540 baseline requests a look; the look (1-based)
    whose verdicts roll back (``cost_per_request > baseline + 10%``), or None."""
    rng = random.Random(seed)
    p = plan()
    cand, base = TrackWindow(), TrackWindow()
    tests = fresh_tests()
    for i in range(1, looks + 1):
        cand = add(cand, usage_window(rng, 60, 1_000 * ratio))
        base = add(base, usage_window(rng, 540, 1_000))
        seen = look(p, 0, None, tests, Counts((cand, base), (cand, base), i * 10.0, i * 10.0))
        tests = seen.tests
        if any(a.verdict is Verdict.FAIL and a.metric == "cost_per_request" for a in seen.rollback):
            return i
    return None


def test_a_candidate_30_percent_costlier_is_rolled_back() -> None:
    caught = [looks_until_rollback(seed, 1.3) for seed in range(10)]
    assert all(n is not None for n in caught), caught


def test_an_equally_costly_candidate_is_not_rolled_back_within_60_looks() -> None:
    assert all(looks_until_rollback(seed, 1.0) is None for seed in range(20))


def test_the_look_judges_tokens_and_names_both_values() -> None:
    rng = random.Random(3)
    cand, base = usage_window(rng, 800, 1_000), usage_window(rng, 800, 1_000)
    seen = look(plan(), 0, None, fresh_tests(), Counts((cand, base), (cand, base), 60.0, 60.0))
    tokens = next(v for v in seen.verdicts if v.metric == "tokens_per_request")
    assert tokens.verdict == "pass" and tokens.unit == "tokens"
    assert tokens.baseline is not None and tokens.value is not None
    cost = next(v for v in seen.verdicts if v.metric == "cost_per_request")
    assert cost.role == "rollback" and cost.verdict == "pass"


def test_a_stored_record_without_new_tests_still_looks() -> None:
    tests = fresh_tests()
    del tests["bad_ratings"]
    rng = random.Random(4)
    cand, base = usage_window(rng, 200, 1_000), usage_window(rng, 200, 1_000)
    seen = look(plan(), 0, None, tests, Counts((cand, base), (cand, base), 60.0, 60.0))
    assert "bad_ratings" in seen.tests and SLOT in seen.tests


def limited_counts(requests: int, rejected: int, errors: int = 0) -> Counts:
    cand = TrackWindow(requests=requests)
    cand.errors = {"upstream_429": rejected, "upstream_5xx": errors}
    base = TrackWindow(requests=requests * 9)
    base.errors = {"upstream_5xx": 0}
    return Counts((cand, base), (cand, base), 60.0, 60.0)


def test_429s_are_not_errors_and_hold_the_phase() -> None:
    p = plan()
    seen = look(p, 0, None, fresh_tests(), limited_counts(1_000, 400))
    errors = next(a for a in seen.rollback if a.metric == "error_rate_vs_baseline")
    assert errors.verdict is not Verdict.FAIL
    assert [a.metric for a in seen.hold] == ["capacity"]
    capacity = next(v for v in seen.verdicts if v.metric == "capacity")
    assert capacity.verdict == "inconclusive" and "rate-limited" in capacity.reason
    # The next interval without 429s lifts the hold.
    later = limited_counts(2_000, 400)
    again = look(p, 0, None, seen.tests, later)
    assert again.hold == ()


def test_counting_429s_as_errors_restores_the_old_rule() -> None:
    p = plan(PLAN + "  comparison: {count_429_as_errors: true}\n")
    counts = limited_counts(1_000, 400)
    base = TrackWindow(requests=20_000)
    counts = Counts((counts.since[0], base), (counts.phase[0], base), 60.0, 60.0)
    seen = look(p, 0, None, fresh_tests(), counts)
    assert seen.hold == ()
    assert any(a.verdict is Verdict.FAIL for a in seen.rollback)


def test_a_rate_limited_phase_holds_then_applies_on_inconclusive() -> None:
    p = plan()
    seen = look(p, 0, None, fresh_tests(), limited_counts(1_000, 400, errors=300))
    state = State(status=Status.RUNNING, phase_started_at=0.0, generation=1)
    failing = Observation(120.0, True, seen.rollback, seen.success, seen.hold)
    held, actions = tick(p, state, failing)
    assert (held.status, actions) == (Status.RUNNING, [])
    late = Observation(p.phases[0].deadline() + 1, True, seen.rollback, seen.success, seen.hold)
    paused, _ = tick(p, state, late)
    assert paused.status is Status.PAUSED and "rate-limited" in paused.history[-1].detail


def test_a_stored_capacity_slot_of_another_shape_is_read_as_empty() -> None:
    tests = {**fresh_tests(), SLOT: SequentialSlot(test={}, consumed=[1, 2, 3])}
    seen = look(plan(), 0, None, tests, limited_counts(1_000, 0))
    assert seen.tests[SLOT].consumed == [1_000, 0]


def test_ab_report_compares_tokens_and_cost() -> None:
    rng = random.Random(5)
    a, b = usage_window(rng, 3_000, 1_000), usage_window(rng, 3_000, 1_400)
    price = Price(prompt_per_1k=1, completion_per_1k=2)
    tokens, cost = compare(
        a, b, ["tokens_per_request", "cost_per_request"], 0.95, prices=(price, price)
    )
    assert tokens.verdict == "b_worse" and "tokens" in tokens.summary
    assert cost.verdict == "b_worse" and cost.b_value is not None and cost.b_value > cost.a_value  # type: ignore[operator]
    (no_price,) = compare(a, b, ["cost_per_request"], 0.95)
    assert no_price.verdict == "insufficient_data"
