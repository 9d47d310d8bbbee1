"""Feature flags, the targeting: every operator, semantic-version precedence, which flag
decides a request (overrides, audiences, percentages, through ``explain``), and the
bucketing (golden vectors, salts, monotonic growth)."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from config.flags import Condition, bucket_of, flag_salt, parse_semver
from config.schema import RoutingDocument
from config.targeting import explain, request_facts
from tests.config.flag_docs import document, flag, track

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "golden" / "flag_buckets.json").read_text(encoding="utf-8")
)


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
