"""A canary's shadow phase: what a plan may say, and each mistake named with its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError
from config.phases import Phase
from config.plans import CanaryPlan, load_plan, parse_plan, stored_plan
from config.shadow import Shadow

PLAN = """canary_deployment:
  route: chat
  candidate: {{track: canary, version: v2, upstreams: ["http://127.0.0.1:9002"]}}
  phases:
{phases}
"""
LIVE = '    - {name: "10%", traffic: 10, duration: 10m}'


def plan(phases: str) -> CanaryPlan:
    parsed = parse_plan(PLAN.format(phases=phases))
    assert isinstance(parsed, CanaryPlan)
    return parsed


def problems(phases: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_plan(PLAN.format(phases=phases))
    return caught.value.problems


def test_a_shadow_phase_defaults_to_no_live_traffic_and_ten_percent_mirrored() -> None:
    loaded = plan(
        "    - name: shadow\n"
        "      shadow: {}\n"
        '      criteria: {error_rate: "< 1%", latency_p95: "< 2s"}\n'
        '      rollback_if: ["error_rate > 5%"]\n' + LIVE
    )
    first = loaded.phases[0]
    assert first.traffic == 0
    assert first.shadow is not None and first.shadow.percent == 10
    assert first.criteria == {"error_rate": "< 1%", "latency_p95": "< 2s"}
    # The route's shadow it becomes: the candidate's track, the route's own defaults.
    assert first.shadow.for_track("canary") == Shadow(track="canary", percent=10)
    assert first.said() == "shadow: 0%, shadow 10%"
    assert loaded.phases[1].said() == "10%: 10%"


def test_a_shadow_phase_takes_every_setting_of_a_routes_shadow() -> None:
    loaded = plan(
        "    - name: shadow\n"
        "      traffic: 0\n"
        "      duration: 30m\n"
        "      shadow: {percent: 2.5, max_in_flight: 4, max_tokens_per_minute: 20000,\n"
        "               timeout: 60s, store_text: true, text_bytes: 1024, max_pairs: 50,\n"
        "               pairs_ttl: 2h}\n" + LIVE
    )
    shadow = loaded.phases[0].shadow
    assert shadow is not None
    assert shadow.for_track("canary") == Shadow(
        track="canary",
        percent=2.5,
        max_in_flight=4,
        max_tokens_per_minute=20_000,
        timeout=60,
        store_text=True,
        text_bytes=1024,
        max_pairs=50,
        pairs_ttl=7200,
    )


def test_a_stored_shadow_plan_loads_again() -> None:
    """A rollout record keeps the plan as JSON (``model_dump``); the runner reads it back."""
    loaded = plan(
        '    - {name: shadow, shadow: {percent: 5}, criteria: {error_rate: "< 1%"}}\n' + LIVE
    )
    again = CanaryPlan.model_validate(stored_plan(loaded.model_dump(mode="json")))
    assert again == loaded


def test_plans_stored_before_shadow_phases_still_load() -> None:
    stored = plan(LIVE).model_dump(mode="json")
    for phase in stored["phases"]:
        del phase["shadow"], phase["criteria"]
    again = CanaryPlan.model_validate(stored_plan(stored))
    assert again.phases[0].shadow is None and again.phases[0].criteria == {}


@pytest.mark.parametrize(
    ("phases", "field", "reason"),
    [
        (
            "    - {name: shadow, shadow: {}, traffic: 5, duration: 1h}\n" + LIVE,
            "canary_deployment.phases[0]: traffic:",
            "sends the candidate no live traffic",
        ),
        (
            "    - {name: shadow, shadow: {}}\n" + LIVE,
            "canary_deployment.phases[0]:",
            "needs criteria or a duration",
        ),
        (
            "    - {name: shadow, shadow: {}, duration: 1h}",
            "canary_deployment.phases:",
            "a live phase must follow it",
        ),
        (
            LIVE + "\n    - {name: shadow, shadow: {}, duration: 1h}",
            "canary_deployment.phases:",
            "phases[1] ('shadow').shadow: only the first phase may be a shadow phase",
        ),
        (
            '    - {name: "10%", traffic: 10, criteria: {error_rate: "< 1%"}}',
            "canary_deployment.phases[0]: criteria:",
            "only a shadow phase has criteria of its own",
        ),
        (
            '    - {name: shadow, shadow: {}, criteria: {error_rate: "< 1"}}\n' + LIVE,
            "canary_deployment.phases[0].criteria:",
            "is a rate: write it as a percentage",
        ),
        (
            '    - {name: shadow, shadow: {}, criteria: {errors: "< 1%"}}\n' + LIVE,
            "canary_deployment.phases[0].criteria.errors",
            "Input should be 'error_rate'",
        ),
        (
            '    - {name: "10%", traffic: 10, rollback_if: ["shadow_win_rate < 30%"]}',
            "canary_deployment.phases[0]: rollback_if:",
            "shadow_win_rate is measured on shadow copies",
        ),
        (
            "    - {name: shadow, shadow: {percent: 120}, duration: 1h}\n" + LIVE,
            "canary_deployment.phases[0].shadow:",
            "percent: Input should be less than or equal to 100",
        ),
        (
            "    - {name: shadow, shadow: {track: other}, duration: 1h}\n" + LIVE,
            "canary_deployment.phases[0].shadow.track:",
            "unknown field",
        ),
        (
            "    - {name: shadow, shadow: {percent: 0}, duration: 1h}\n" + LIVE,
            "canary_deployment.phases[0].shadow:",
            "percent: a shadow phase mirrors more than 0 %",
        ),
        (
            "    - {name: shadow, shadow: {max_in_flight: 0}, duration: 1h}\n" + LIVE,
            "canary_deployment.phases[0].shadow:",
            "max_in_flight: Input should be greater than or equal to 1",
        ),
    ],
)
def test_shadow_phase_mistakes_name_the_field(phases: str, field: str, reason: str) -> None:
    found = problems(phases)
    assert any(field in p and reason in p for p in found), found


def test_a_shadow_phase_criterion_on_cost_needs_the_candidates_price() -> None:
    found = problems(
        '    - {name: shadow, shadow: {}, criteria: {cost_per_request: "< $0.002"}}\n' + LIVE
    )
    assert any("pricing" in p for p in found), found


def test_the_shadow_win_rate_is_judged_in_a_shadow_phase_only() -> None:
    loaded = plan(
        "    - name: shadow\n"
        "      shadow: {store_text: true}\n"
        '      criteria: {shadow_win_rate: "> 45%"}\n'
        '      rollback_if: ["shadow_win_rate < 20%"]\n' + LIVE
    )
    assert loaded.phases[0].criteria == {"shadow_win_rate": "> 45%"}
    with pytest.raises(ConfigError) as caught:
        parse_plan(
            PLAN.format(phases=LIVE) + '  config: {success_criteria: {shadow_win_rate: "> 45%"}}\n'
        )
    assert any(
        "canary_deployment:" in p and "give it in a shadow phase's criteria" in p
        for p in caught.value.problems
    ), caught.value.problems


def test_a_phase_without_shadow_is_a_live_phase_as_before() -> None:
    phase = Phase(name="5%", traffic=5)
    assert (phase.shadow, phase.criteria, phase.said()) == (None, {}, "5%: 5%")


def test_an_ab_test_cannot_compare_shadow_win_rates() -> None:
    with pytest.raises(ConfigError, match="shadow_win_rate judges shadow copies"):
        parse_plan(
            "ab_testing: {route: chat, split: {a: 50, b: 50}, duration: 1h,"
            " metrics: [error_rate, shadow_win_rate]}"
        )


def test_the_shipped_shadow_plan_opens_with_a_shadow_phase() -> None:
    plan = load_plan(Path(__file__).parents[2] / "config/examples/plans/canary-shadow.yaml")
    assert isinstance(plan, CanaryPlan)
    first = plan.phases[0]
    assert first.shadow is not None and first.traffic == 0
    shadow = first.shadow.for_track(plan.candidate.track)
    assert (shadow.track, shadow.percent, shadow.store_text) == ("canary", 10, True)
    assert first.criteria["shadow_win_rate"] == "> 45%"
