"""Feature flags, the model: the seed's example as written, documents without flags, every
validation mistake named by its field (the file, conditions, the document), and the
per-flag window fields of the metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from config.flags import Condition
from config.keys import StoredDocument
from config.loader import ConfigError, load_config, parse_model
from config.metrics import field_name, flag_field_name, merge_flag_windows, merge_windows
from config.schema import RoutingDocument, SplitgateConfig
from tests.config.flag_docs import EXAMPLE, SEED, flag, track

# --- the seed's example and the document ---------------------------------------------


def test_the_seed_example_loads_as_written() -> None:
    config = load_config(EXAMPLE)
    new = config.feature_flags["new_prompt_v2"]
    assert (new.route, new.track, new.enabled, new.rollout_percentage) == ("chat", "v2", True, 25)
    assert new.target_groups == ["beta_users", "internal_testing"]
    assert [(c.attribute, c.operator, c.values) for c in new.conditions] == [
        ("user_segment", "in", ["premium", "enterprise"]),
        ("region", "in", ["jp", "us"]),
    ]
    assert new.override.enabled_for == ["user_123", "user_456"]
    assert new.override.disabled_for == ["user_789"]
    assert new.gradual_rollout is not None
    steps = new.gradual_rollout.schedule
    assert [(s.date, s.percentage, s.target, s.action) for s in steps] == [
        ("2025-04-01", 5, "internal_users", None),
        ("2025-04-08", 20, "beta_users", None),
        ("2025-04-15", 50, "all_users", None),
        ("2025-04-22", 100, "all_users", "remove_flag"),
    ]
    assert new.gradual_rollout.timezone == "UTC"
    # It survives the trip through Redis's encoding and the file's document() copy.
    stored = StoredDocument.stamp(config.document(), 1, 0.0, "test")
    assert StoredDocument.decode(stored.encode()).routing() == config.document()


def test_a_document_without_flags_reads_and_encodes_as_before() -> None:
    old = {"routes": [{"name": "chat", "tracks": [track("stable", 100)]}]}
    config = SplitgateConfig.model_validate(old)
    assert config.feature_flags == {} and config.segments == {} and config.attributes == {}
    encoded = json.loads(StoredDocument.stamp(config.document(), 3, 0.0, "t").encode())
    assert set(encoded) == {"routes", "generation", "written_at", "written_by"}


# --- validation: every refusal names its field ---------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            ('- type: "region"', "- {type: region, operator: regex, value: x}\n      - type: r"),
            "feature_flags.new_prompt_v2.conditions[1].operator",
            "unknown operator 'regex'",
        ),
        (
            ('values: ["jp", "us"]', "values: []"),
            "feature_flags.new_prompt_v2.conditions[1].values",
            "empty audience",
        ),
        (
            ("conditions: [{type: user_group, values: [beta]}]", "conditions: []"),
            "segments.beta_users.conditions",
            "empty audience",
        ),
        (
            ("rollout_percentage: 25", "rollout_percentage: 101"),
            "feature_flags.new_prompt_v2.rollout_percentage",
            "between 0 and 100",
        ),
        (
            ("rollout_percentage: 25", "rollout_percentage: 2.555"),
            "feature_flags.new_prompt_v2.rollout_percentage",
            "at most two decimals",
        ),
        (
            ("percentage: 20", "percentage: -1"),
            "feature_flags.new_prompt_v2.gradual_rollout.schedule[1].percentage",
            "between 0 and 100",
        ),
        (
            ('date: "2025-04-08"', 'date: "2025/04/08"'),
            "feature_flags.new_prompt_v2.gradual_rollout.schedule[1].date",
            "is not a date: use YYYY-MM-DD",
        ),
        (
            ('date: "2025-04-08"', 'date: "2025-02-30"'),
            "feature_flags.new_prompt_v2.gradual_rollout.schedule[1].date",
            "is not a date",
        ),
        (
            ('date: "2025-04-08"', 'date: "2025-03-08"'),
            "feature_flags.new_prompt_v2.gradual_rollout.schedule[1].date",
            "is not after the previous step's 2025-04-01",
        ),
        (
            ("track: v2", "track: v3"),
            "feature_flags.new_prompt_v2.track",
            "route 'chat' has no track 'v3'",
        ),
        (
            ("route: chat\n    track", "route: chat2\n    track"),
            "feature_flags.new_prompt_v2.route",
            "no route named 'chat2'",
        ),
        (
            ("- beta_users", "- beta_userz"),
            "feature_flags.new_prompt_v2.target_groups[0]",
            "unknown segment 'beta_userz'",
        ),
        (
            ('target: "beta_users"', 'target: "betas"'),
            "feature_flags.new_prompt_v2.gradual_rollout.schedule[1].target",
            "unknown segment 'betas'",
        ),
        (
            ("      # timezone: UTC", "      timezone: Mars/Olympus"),
            "feature_flags.new_prompt_v2.gradual_rollout.timezone",
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            ("percentage: 100\n", "percentage: 90\n"),
            "feature_flags.new_prompt_v2.gradual_rollout.schedule[3].action",
            "percentage 100 of all_users",
        ),
        (
            ("enabled: true", "enabled: yes please"),
            "feature_flags.new_prompt_v2.enabled",
            "valid boolean",
        ),
        (
            ("    enabled: true", "    enabld: true"),
            "feature_flags.new_prompt_v2.enabld",
            "unknown field",
        ),
    ],
)
def test_every_mistake_names_its_field(change: tuple[str, str], field: str, reason: str) -> None:
    text = SEED.replace(*change, 1)
    assert text != SEED
    with pytest.raises(ConfigError) as caught:
        parse_model(text, SplitgateConfig, source="flags.yaml")
    problems = caught.value.problems
    assert any(f": {field}: " in p and reason in p for p in problems), problems
    assert all(p.startswith("flags.yaml:") for p in problems)


@pytest.mark.parametrize(
    ("condition", "loc", "reason"),
    [
        ({"type": "tier", "operator": "gt", "value": "three"}, ("value",), "compares numbers"),
        ({"type": "tier", "operator": "gt", "values": ["3"]}, ("values",), "one 'value'"),
        ({"type": "app", "operator": "semver_gte", "value": "2.x"}, ("value",), "a version"),
        ({"type": "app", "operator": "semver_gte", "value": 2}, ("value",), "a version"),
        ({"type": "tier", "operator": "equals", "value": 3}, ("value",), "compares text"),
        ({"type": "tier", "operator": "equals", "value": True}, ("value",), "not true/false"),
        ({"type": "tier", "operator": "in", "value": "a"}, ("value",), "takes 'values'"),
        ({"type": "tier", "operator": "not_in", "values": []}, ("values",), "empty audience"),
        ({"type": "tier", "operator": "prefix", "values": [""]}, ("values",), "empty prefix"),
        ({"type": "Tier", "values": ["a"]}, ("type",), "attribute name"),
        ({"type": "tier", "attribute": "tier", "values": ["a"]}, ("type",), "Extra inputs"),
    ],
)
def test_malformed_conditions_are_refused(
    condition: dict[str, Any], loc: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Condition.model_validate(condition)
    assert any(e["loc"] == loc and reason in e["msg"] for e in caught.value.errors()), (
        caught.value.errors()
    )


@pytest.mark.parametrize(
    ("data", "loc", "reason"),
    [
        (
            {"feature_flags": {"f": flag()}},
            ("feature_flags", "f", "target_groups"),
            "empty audience",
        ),
        (
            {"segments": {"all_users": {"conditions": [{"type": "a", "values": ["b"]}]}}},
            ("segments", "all_users"),
            "built in",
        ),
        ({"attributes": {"user_id": "x-user"}}, ("attributes", "user_id"), "sticky key"),
        (
            {"attributes": {"region": "bad header"}},
            ("attributes", "region"),
            "not a valid HTTP header",
        ),
    ],
)
def test_document_level_mistakes(data: dict[str, Any], loc: tuple[str, ...], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RoutingDocument.model_validate(
            {"routes": [{"name": "chat", "tracks": [track("stable", 100), track("v2", 0)]}], **data}
        )
    assert any(
        tuple(e["loc"])[: len(loc)] == loc and reason in e["msg"] for e in caught.value.errors()
    ), caught.value.errors()


# --- per-flag window fields -------------------------------------------------------------------


def test_flag_window_fields_leave_the_totals_alone() -> None:
    window = {
        field_name("v2", "2.0", "requests"): "7",
        flag_field_name("v2", "2.0", "requests", "new"): "5",
        flag_field_name("v2", "2.0", "err:connect", "new"): "1",
    }
    assert merge_windows([window])[("v2", "2.0")].requests == 7
    flags = merge_flag_windows([window, window])
    assert set(flags) == {("new", "v2", "2.0")}
    assert (flags["new", "v2", "2.0"].requests, flags["new", "v2", "2.0"].errors["connect"]) == (
        10,
        2,
    )
