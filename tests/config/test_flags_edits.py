"""Feature flags, the edits the admin API makes: put, patch and delete a flag (a bad field
named), segments and attributes, route edits that keep the flags, and schedule steps
applied to the document."""

from __future__ import annotations

from typing import Any

import pytest

from config.loader import load_config
from config.schema import RoutingDocument
from config.targeting import explain
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
from tests.config.flag_docs import EXAMPLE, flag

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
