"""Rollout plans in the seed's vocabulary: they load as written, and mistakes name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.environments import load_environments
from config.loader import ConfigError
from config.plans import (
    ABTestPlan,
    BigBangPlan,
    BlueGreenPlan,
    CanaryPlan,
    load_plan,
)
from config.thresholds import parse_condition, parse_threshold

EXAMPLES = Path(__file__).parents[2] / "config" / "examples"


def test_shipped_plans_load_with_the_seed_notation() -> None:
    canary = load_plan(EXAMPLES / "plans" / "canary.yaml")
    assert isinstance(canary, CanaryPlan)
    assert [p.traffic for p in canary.phases] == [5, 25, 50, 100]
    assert [p.duration for p in canary.phases] == [7200, 14400, 28800, None]
    assert [p.requires_approval for p in canary.phases] == [False, False, True, True]
    assert [str(c) for c in canary.phases[0].rollback_if] == [
        "error_rate > 5%",
        "latency_p95 > 3000ms",
    ]
    assert canary.canary_metrics.secondary[1].window == 3600
    assert canary.comparison.confidence == 0.95
    assert isinstance(load_plan(EXAMPLES / "plans" / "blue-green.yaml"), BlueGreenPlan)
    assert isinstance(load_plan(EXAMPLES / "plans" / "big-bang.yaml"), BigBangPlan)
    assert isinstance(load_plan(EXAMPLES / "plans" / "ab-test.yaml"), ABTestPlan)
    for name in ("demo-canary.yaml", "demo-bad-canary.yaml"):
        demo = load_plan(EXAMPLES / "plans" / name)
        assert isinstance(demo, CanaryPlan)
        assert (demo.baseline, demo.candidate.track) == ("stable", "canary")
        assert [p.requires_approval for p in demo.phases] == [False, False, True]
        assert demo.on_inconclusive == "pause"
    production = load_environments(EXAMPLES / "environments.yaml").environments["production"]
    assert (production.deployment, production.approval_required, production.rollback) == (
        "canary",
        True,
        "automatic",
    )


@pytest.mark.parametrize(
    ("metric", "text", "value"),
    [
        ("error_rate", "< 1%", 0.01),
        ("error_rate", "<= 2%", 0.02),
        ("latency_p95", "< 2000ms", 2000.0),
        ("latency_p95", "> 3 s", 3000.0),
        ("ttfb_p50", "< 800", 800.0),
        ("user_satisfaction", "> 4.0/5.0", 4.0),
        ("user_satisfaction", ">= 0.8/1", 4.0),
        ("hallucination_rate", "< 5%", 0.05),
    ],
)
def test_thresholds(metric: str, text: str, value: float) -> None:
    assert parse_threshold(text, metric).value == pytest.approx(value)


@pytest.mark.parametrize(
    ("metric", "text", "reason"),
    [
        ("error_rate", "about 1%", "not a threshold"),
        ("error_rate", "< 150%", "between 0% and 100%"),
        ("error_rate", "< 5ms", "is a rate"),
        # Without a unit "< 1" would mean 100 % and always pass.
        ("error_rate", "< 1", "write it as a percentage, e.g. '< 1%'"),
        ("hallucination_rate", "< 0.05", "is a rate"),
        ("latency_p95", "< 5%", "is a latency"),
        ("user_satisfaction", "> 6", "between 0 and 5"),
    ],
)
def test_bad_thresholds(metric: str, text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_threshold(text, metric)


def test_conditions() -> None:
    assert parse_condition("latency_p99 > 5 s").threshold.value == 5000
    with pytest.raises(ValueError, match="starts with a metric"):
        parse_condition("errors > 5%")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_plan(write(tmp_path, text))
    return caught.value.problems


def test_plan_mistakes_name_file_line_and_field(tmp_path: Path) -> None:
    text = (EXAMPLES / "plans" / "canary.yaml").read_text(encoding="utf-8")
    path = tmp_path / "plan.yaml"
    found = problems(tmp_path, text.replace("- error_rate > 5%", "- error_rate > 5 parsecs"))
    assert any(
        p.startswith(f"{path}:")
        and "canary_deployment.phases[0].rollback_if[0]" in p
        and "not a threshold" in p
        for p in found
    ), found
    found = problems(tmp_path, text.replace('duration: "4 hours"', 'duration: "4 fortnights"'))
    assert any(
        "canary_deployment.phases[1].duration" in p and "unknown time unit" in p for p in found
    ), found
    found = problems(tmp_path, text.replace("traffic: 50", "traffic: 20"))
    assert any("canary_deployment.phases" in p and "lowers traffic" in p for p in found), found
    found = problems(tmp_path, text.replace('latency_p95: "< 2000ms"', 'latency_p95: "< 2%"'))
    assert any(
        "canary_deployment.config.success_criteria" in p and "is a latency" in p for p in found
    ), found
    found = problems(tmp_path, text.replace("- error_rate > 5%", "- error_rate > 5"))
    assert any(
        p.startswith(f"{path}:")
        and "canary_deployment.phases[0].rollback_if[0]" in p
        and "percentage" in p
        for p in found
    ), found
    found = problems(tmp_path, text.replace('threshold: "< 1%"', 'threshold: "< 1"'))
    assert any(
        "canary_deployment.canary_metrics.primary[0]" in p and "percentage" in p for p in found
    ), found
    found = problems(
        tmp_path,
        text.replace('duration: "4 hours"', 'duration: "4 hours"\n      max_duration: 1h'),
    )
    assert any(
        "canary_deployment.phases[1]" in p and "shorter than duration" in p for p in found
    ), found
    found = problems(tmp_path, text + "  on_inconclusive: wait\n")
    assert any("canary_deployment.on_inconclusive" in p for p in found), found
    found = problems(tmp_path, text.replace("auto_promote: true", "auto_promte: true"))
    assert any("canary_deployment.phases[0].auto_promte: unknown field" in p for p in found), found


def test_a_plan_holds_exactly_one_strategy(tmp_path: Path) -> None:
    both = (EXAMPLES / "plans" / "big-bang.yaml").read_text(encoding="utf-8") + (
        EXAMPLES / "plans" / "ab-test.yaml"
    ).read_text(encoding="utf-8")
    assert any("exactly one of" in p for p in problems(tmp_path, both))
    assert any("exactly one of" in p for p in problems(tmp_path, "big_bang_deployment: null\n"))
