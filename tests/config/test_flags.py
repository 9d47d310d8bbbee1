"""Feature flags: the model, every operator, precedence, explanations, schedules, edits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.flag_schedule import Schedule, due_steps, step_time
from config.flags import Condition, bucket_of, flag_salt, parse_semver
from config.keys import StoredDocument
from config.loader import ConfigError, load_config, parse_model
from config.metrics import field_name, flag_field_name, merge_flag_windows, merge_windows
from config.schema import RoutingDocument, SplitgateConfig
from config.targeting import explain, request_facts
from control.edits import (
    EditError,
    apply_schedule_step,
    delete_flag,
    delete_segment,
    patch_flag,
    put_flag,
    put_segment,
    set_attributes,
    set_weights,
)

EXAMPLE = Path(__file__).parents[2] / "config" / "examples" / "flags.yaml"
GOLDEN = json.loads(
    (Path(__file__).parents[1] / "golden" / "flag_buckets.json").read_text(encoding="utf-8")
)


def track(name: str, weight: float) -> dict[str, Any]:
    return {
        "name": name,
        "version": f"{name}.0",
        "upstreams": ["http://127.0.0.1:1"],
        "weight": weight,
    }


def document(
    flags: dict[str, Any], segments: dict[str, Any] | None = None, **extra: Any
) -> RoutingDocument:
    return RoutingDocument.model_validate(
        {
            "routes": [{"name": "chat", "tracks": [track("stable", 100), track("v2", 0)]}],
            "segments": segments or {},
            "feature_flags": flags,
            **extra,
        }
    )


def flag(**fields: Any) -> dict[str, Any]:
    return {"route": "chat", "track": "v2", **fields}


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

SEED = EXAMPLE.read_text(encoding="utf-8")


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


# --- every operator -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "operand", "value", "holds"),
    [
        ("in", ["premium", "enterprise"], "premium", True),
        ("in", ["premium", "enterprise"], "Premium", False),  # exact, case-sensitive
        ("in", ["premium"], None, False),
        ("in", ["premium"], "", False),  # an empty header is no header
        ("not_in", ["free"], "premium", True),
        ("not_in", ["free"], "free", False),
        ("not_in", ["free"], None, False),  # a missing attribute satisfies nothing
        ("equals", "jp", "jp", True),
        ("equals", "jp", "jp ", False),
        ("not_equals", "jp", "us", True),
        ("not_equals", "jp", "jp", False),
        ("not_equals", "jp", None, False),
        ("prefix", ["acme-", "corp-"], "corp-42", True),
        ("prefix", ["acme-"], "ac", False),
        ("gt", 3, "4", True),
        ("gt", 3, "3", False),
        ("gt", 3, "3.5", True),
        ("gt", 3, "four", False),  # malformed: no match
        ("gt", 3, "nan", False),
        ("gt", 3, "inf", False),
        ("gte", 3, "3", True),
        ("lt", 3, "-1e3", True),
        ("lt", 3, "3", False),
        ("lte", 3.5, "3.5", True),
        ("lte", 3, "", False),
        ("semver_gt", "2.3.0", "2.10.0", True),  # numeric, not lexical
        ("semver_gt", "2.3.0", "2.3.0", False),
        ("semver_gt", "2.3.0", "v2.3.1", True),
        ("semver_gt", "2.3.0", "2.3.1-beta.1", True),
        ("semver_gt", "2.3.0", "2.3.0+build.7", False),  # build metadata is ignored
        ("semver_gt", "2.3.0", "2.3", False),  # malformed: no match
        ("semver_gt", "2.3.0", "latest", False),
        ("semver_gte", "2.3.0", "2.3.0", True),
        ("semver_gte", "2.3.0", "2.3.0-rc.1", False),  # a pre-release comes before
        ("semver_lt", "2.3.0-rc.2", "2.3.0-rc.10", False),  # numeric identifiers compare as numbers
        ("semver_lt", "2.3.0-rc.1", "2.3.0-beta.9", True),
        ("semver_lt", "2.3.0-alpha", "2.3.0-alpha.1", False),  # more identifiers: later
        ("semver_lte", "1.0.0", "1.0.0", True),
        ("semver_eq", "1.0.0", "v1.0.0", True),
        ("semver_eq", "1.0.0", "1.0.1", False),
    ],
)
def test_every_operator(operator: str, operand: Any, value: str | None, holds: bool) -> None:
    key = "values" if isinstance(operand, list) else "value"
    condition = Condition.model_validate({"type": "a", "operator": operator, key: operand})
    assert condition.holds(value) is holds


def test_semver_precedence_follows_the_spec() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    keys = [parse_semver(v) for v in ordered]
    assert all(k is not None for k in keys)
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert len(set(keys)) == len(keys)


# --- precedence, through explain --------------------------------------------------------

SEGMENTS = {
    "beta": {"conditions": [{"type": "user_group", "values": ["beta"]}]},
    "jp_premium": {
        "conditions": [
            {"type": "region", "values": ["jp"]},
            {"type": "user_segment", "values": ["premium"]},
        ]
    },
}


def precedence_document(percentage: float = 100) -> RoutingDocument:
    return document(
        {
            "new": flag(
                rollout_percentage=percentage,
                target_groups=["beta", "jp_premium"],
                conditions=[{"type": "app_version", "operator": "semver_gte", "value": "3.0.0"}],
                override={"enabled_for": ["ann", "both"], "disabled_for": ["dan", "both"]},
            )
        },
        SEGMENTS,
    )


@pytest.mark.parametrize(
    ("user", "attributes", "track", "rule"),
    [
        ("ann", {}, "v2", "enabled_for"),  # allow without any audience
        ("dan", {"user_group": "beta"}, "stable", "weights"),  # deny beats the audience
        ("both", {"user_group": "beta"}, "stable", "weights"),  # deny before allow
        ("u1", {"user_group": "beta"}, "v2", "rollout"),  # first set
        ("u1", {"region": "jp", "user_segment": "premium"}, "v2", "rollout"),  # AND inside a set
        ("u1", {"region": "jp"}, "stable", "weights"),  # half a set is no set
        ("u1", {"region": "us", "user_segment": "premium"}, "stable", "weights"),
        ("u1", {"app_version": "3.1.0"}, "v2", "rollout"),  # the flag's own conditions: OR
        ("u1", {"app_version": "three"}, "stable", "weights"),  # malformed: no match
        ("u1", {}, "stable", "weights"),  # nothing sent
    ],
)
def test_precedence(user: str, attributes: dict[str, str], track: str, rule: str) -> None:
    got = explain(precedence_document(), "chat", user, attributes)
    assert (got.track, got.rule) == (track, rule), got.reason
    assert got.flag == ("new" if track == "v2" else None)


def test_percentage_applies_inside_the_audience_only() -> None:
    doc = precedence_document(percentage=30)
    inside = [explain(doc, "chat", f"user-{i}", {"user_group": "beta"}) for i in range(1000)]
    released = sum(e.track == "v2" for e in inside)
    assert 230 < released < 370
    assert all(e.rule in ("rollout", "weights") for e in inside)
    held = next(e for e in inside if e.track == "stable")
    assert held.flags[0].outcome == "held_out" and "≥ 3000" in held.reason
    outside = [explain(doc, "chat", f"user-{i}", {"user_group": "free"}) for i in range(300)]
    assert {e.track for e in outside} == {"stable"}


def test_first_releasing_flag_decides_and_a_disabled_flag_is_skipped() -> None:
    doc = RoutingDocument.model_validate(
        {
            "routes": [
                {"name": "chat", "tracks": [track("stable", 100), track("v2", 0), track("v3", 0)]}
            ],
            "feature_flags": {
                "off": flag(track="v3", enabled=False, target_groups=["all_users"]),
                "v3-for-jp": flag(track="v3", conditions=[{"type": "region", "values": ["jp"]}]),
                "v2-for-all": flag(track="v2", target_groups=["all_users"]),
            },
        }
    )
    jp = explain(doc, "chat", "u", {"region": "jp"})
    assert (jp.track, jp.flag) == ("v3", "v3-for-jp")
    assert [s.outcome for s in jp.flags] == ["disabled", "released"]
    us = explain(doc, "chat", "u", {"region": "us"})
    assert (us.track, us.flag) == ("v2", "v2-for-all")


def test_explain_without_a_sticky_key_says_the_draw_is_random() -> None:
    doc = precedence_document(percentage=30)
    assert explain(doc, "chat", None, {"user_group": "beta"}).rule == "random"
    assert explain(doc, "chat", None, {}).track is None
    full = explain(precedence_document(), "chat", None, {"user_group": "beta"})
    assert (full.track, full.rule) == ("v2", "rollout")


def test_explain_reads_the_request_like_the_proxy() -> None:
    doc = document(
        {"f": flag(conditions=[{"type": "region", "values": ["jp"]}])},
        attributes={"region": "x-geo"},
    )
    key, attributes = request_facts(
        doc, "chat", {"x-session-id": "s-1", "x-geo": "jp", "x-region": "us"}
    )
    assert (key, attributes) == ("s-1", {"region": "jp"})
    key, _ = request_facts(doc, "chat", {}, client_ip="10.0.0.9")
    assert key == "10.0.0.9"
    with pytest.raises(ValueError, match="no route named 'nope'"):
        explain(doc, "nope", "u", {})


# --- bucketing ------------------------------------------------------------------------------


def test_golden_flag_buckets() -> None:
    for vector in GOLDEN["vectors"]:
        if vector["flag"] is not None:
            parsed = document({vector["flag"]: flag(target_groups=["all_users"])})
            assert flag_salt(vector["flag"], parsed.feature_flags[vector["flag"]]) == vector["salt"]
        assert bucket_of(vector["salt"], vector["key"]) == vector["bucket"], vector


def test_an_explicit_salt_replaces_the_default() -> None:
    doc = document({"f": flag(target_groups=["all_users"], salt="custom-salt")})
    assert flag_salt("f", doc.feature_flags["f"]) == "custom-salt"


def test_monotonic_in_explain() -> None:
    users = [f"user-{i}" for i in range(1000)]
    released: list[set[str]] = []
    for percentage in (0, 5, 20, 50, 100):
        doc = document({"f": flag(target_groups=["all_users"], rollout_percentage=percentage)})
        released.append({u for u in users if explain(doc, "chat", u, {}).flag == "f"})
    assert all(a <= b for a, b in pairwise(released))
    assert (len(released[0]), len(released[-1])) == (0, 1000)


# --- schedules ------------------------------------------------------------------------------


def schedule(**fields: Any) -> Schedule:
    steps = [
        {"date": "2025-04-01", "percentage": 5, "target": "internal_users"},
        {"date": "2025-04-08", "percentage": 20, "target": "beta_users"},
        {"date": "2025-04-15T09:30", "percentage": 50, "target": "all_users"},
        {"date": "2025-04-22", "percentage": 100, "target": "all_users", "action": "remove_flag"},
    ]
    return Schedule.model_validate({"schedule": steps, **fields})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("applied", "now", "due"),
    [
        (0, "2025-03-31T23:59:59", []),
        (0, "2025-04-01T00:00:00", ["2025-04-01"]),
        (1, "2025-04-01T12:00:00", []),  # applied already: never twice
        (1, "2025-04-15T09:29:00", ["2025-04-08"]),
        (2, "2025-04-15T09:30:00", ["2025-04-15T09:30"]),
        (0, "2025-05-01T00:00:00", ["2025-04-01", "2025-04-08", "2025-04-15T09:30", "2025-04-22"]),
        (4, "2026-01-01T00:00:00", []),
    ],
)
def test_due_steps(applied: int, now: str, due: list[str]) -> None:
    assert [s.date for s in due_steps(schedule(), applied, at(now))] == due


def test_a_paused_schedule_has_nothing_due() -> None:
    assert due_steps(schedule(paused=True), 0, at("2026-01-01T00:00:00")) == []


def test_a_step_that_needs_the_previous_analysis_waits_for_it() -> None:
    gated = schedule(requires_analysis=True)
    late = at("2026-01-01T00:00:00")
    assert [s.date for s in due_steps(gated, 0, late)] == ["2025-04-01"]
    assert [s.date for s in due_steps(gated, 1, late)] == ["2025-04-08"]
    steps = [s.model_dump() for s in schedule().schedule]
    steps[2]["requires_analysis"] = True
    one = Schedule.model_validate({"schedule": steps})
    assert [s.date for s in due_steps(one, 0, late)] == ["2025-04-01", "2025-04-08"]
    assert len(due_steps(one, 2, late)) == 2
    assert one.requires_analysis_at(2) and not one.requires_analysis_at(3)


def test_steps_fall_due_in_the_schedules_time_zone() -> None:
    tokyo = schedule(timezone="Asia/Tokyo")
    assert step_time(tokyo, 0) == at("2025-03-31T15:00:00")
    assert due_steps(tokyo, 0, at("2025-03-31T14:59:00")) == []
    assert len(due_steps(tokyo, 0, at("2025-03-31T15:00:00"))) == 1
    assert step_time(schedule(), 0) == at("2025-04-01T00:00:00")


def test_due_steps_refuses_a_naive_clock_and_a_bad_count() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_steps(schedule(), 0, datetime(2025, 4, 1))
    with pytest.raises(ValueError, match="outside"):
        due_steps(schedule(), 5, at("2025-04-01T00:00:00"))


def test_unquoted_yaml_dates_are_accepted() -> None:
    text = SEED.replace('date: "2025-04-01"', "date: 2025-04-01").replace(
        'date: "2025-04-08"', "date: 2025-04-08 06:00:00"
    )
    config = parse_model(text, SplitgateConfig)
    steps = config.feature_flags["new_prompt_v2"].gradual_rollout
    assert steps is not None
    assert [s.date for s in steps.schedule[:2]] == ["2025-04-01", "2025-04-08T06:00"]
    assert step_time(steps, 1) - step_time(steps, 0) == timedelta(days=7, hours=6)


def test_remove_flag_only_ends_a_schedule() -> None:
    steps = [s.model_dump() for s in schedule().schedule]
    steps[1], steps[3] = (
        {**steps[3], "date": steps[1]["date"]},
        {**steps[1], "date": steps[3]["date"]},
    )
    with pytest.raises(ValidationError, match="remove_flag must be the last step"):
        Schedule.model_validate({"schedule": steps})


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


# --- edits for the admin API ------------------------------------------------------------------


def seeded() -> RoutingDocument:
    return load_config(EXAMPLE).document()


def edit_error(edit: Any) -> EditError:
    with pytest.raises(EditError) as caught:
        edit()
    return caught.value


def test_put_patch_and_delete_a_flag() -> None:
    doc = put_flag(seeded(), "tone", flag(target_groups=["beta_users"], rollout_percentage=10))
    assert list(doc.feature_flags) == ["new_prompt_v2", "tone"]  # added last
    doc = put_flag(doc, "new_prompt_v2", flag(target_groups=["all_users"]))
    assert list(doc.feature_flags) == ["new_prompt_v2", "tone"]  # replaced in place
    doc = patch_flag(doc, "tone", {"enabled": False})
    assert not doc.feature_flags["tone"].enabled
    assert doc.feature_flags["tone"].rollout_percentage == 10
    assert list(delete_flag(doc, "tone").feature_flags) == ["new_prompt_v2"]
    assert edit_error(lambda: delete_flag(doc, "nope")).status == 404


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            flag(conditions=[{"type": "a", "operator": "like", "values": ["b"]}]),
            "flag.conditions[0].operator",
            "unknown operator",
        ),
        (flag(target_groups=[]), "flag.target_groups", "empty audience"),
        (
            flag(target_groups=["all_users"], rollout_percentage=120),
            "flag.rollout_percentage",
            "between 0 and 100",
        ),
        (flag(track="v9", target_groups=["all_users"]), "flag.track", "no track 'v9'"),
        (flag(target_groups=["vips"]), "flag.target_groups[0]", "unknown segment 'vips'"),
        (
            flag(
                target_groups=["all_users"],
                gradual_rollout={"schedule": [{"date": "April 1", "percentage": 5}]},
            ),
            "flag.gradual_rollout.schedule[0].date",
            "is not a date",
        ),
        ([1, 2], "flag", "a JSON object"),
    ],
)
def test_put_flag_names_the_bad_field(body: Any, field: str, reason: str) -> None:
    error = edit_error(lambda: put_flag(seeded(), "f", body))
    assert error.status == 422
    assert any(e.field == field and reason in e.reason for e in error.errors), error.errors


def test_segments_and_attributes() -> None:
    doc = put_segment(
        seeded(), "vips", {"conditions": [{"type": "tier", "operator": "gte", "value": 3}]}
    )
    assert doc.segments["vips"].conditions[0].value == 3
    bad = edit_error(lambda: put_segment(seeded(), "vips", {"conditions": []}))
    assert bad.errors[0].field == "segment.conditions"
    used = edit_error(lambda: delete_segment(seeded(), "beta_users"))
    assert used.status == 409 and "new_prompt_v2" in used.errors[0].reason
    assert "vips" not in delete_segment(doc, "vips").segments
    doc = set_attributes(seeded(), {"region": "x-geo"})
    assert doc.attributes == {"region": "x-geo"}
    wrong = edit_error(lambda: set_attributes(seeded(), {"user_id": "x-u"}))
    assert wrong.errors[0].field == "attributes.user_id"


def test_route_edits_keep_the_flags() -> None:
    doc = set_weights(seeded(), "chat", {"v1": 90, "v2": 10})
    assert doc.feature_flags == seeded().feature_flags and doc.segments == seeded().segments


def test_schedule_steps_apply_to_the_document() -> None:
    doc = seeded()
    assert doc.feature_flags["new_prompt_v2"].gradual_rollout is not None
    steps = doc.feature_flags["new_prompt_v2"].gradual_rollout.schedule
    first = apply_schedule_step(doc, "new_prompt_v2", steps[0]).feature_flags["new_prompt_v2"]
    assert (first.rollout_percentage, first.target_groups, first.conditions) == (
        5,
        ["internal_users"],
        [],
    )
    # remove_flag: refused while someone is excluded, else the track takes all the weight.
    refused = edit_error(lambda: apply_schedule_step(doc, "new_prompt_v2", steps[3]))
    assert refused.status == 409 and "disabled_for" in refused.errors[0].reason
    doc = patch_flag(doc, "new_prompt_v2", {"override": {"enabled_for": ["user_123"]}})
    for step in steps[:3]:
        doc = apply_schedule_step(doc, "new_prompt_v2", step)
    before = {u: explain(doc, "chat", u, {}).track for u in (f"u{i}" for i in range(200))}
    doc = apply_schedule_step(doc, "new_prompt_v2", steps[2].model_copy(update={"percentage": 100}))
    released = {u: explain(doc, "chat", u, {}).track for u in before}
    assert set(released.values()) == {"v2"}
    done = apply_schedule_step(doc, "new_prompt_v2", steps[3])
    assert done.feature_flags == {}
    assert {t.name: t.weight for t in done.routes[0].tracks} == {"v1": 0, "v2": 100}
    assert {u: explain(done, "chat", u, {}).track for u in before} == released


def test_the_first_scheduled_step_never_waits_for_an_analysis() -> None:
    from config.flag_schedule import Schedule

    schedule = Schedule.model_validate(
        {
            "requires_analysis": True,
            "schedule": [
                {"date": "2025-04-01", "percentage": 5, "target": "all_users"},
                {"date": "2025-04-08", "percentage": 20, "target": "all_users"},
            ],
        }
    )
    # At 0 % a flag releases nobody, so there is nothing to analyse before the first step.
    assert [schedule.requires_analysis_at(i) for i in (0, 1)] == [False, True]
