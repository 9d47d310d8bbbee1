"""A schedule's steps as edits of the routing document, pure (``control.schedule_steps``)."""

from __future__ import annotations

from typing import Any

import pytest

from config.flag_schedule import Schedule, ScheduleStep
from config.schema import RoutingDocument
from config.targeting import explain
from control import edits
from control.edits import EditError
from control.schedule_steps import applied_count, apply_step, in_effect, step_key
from tests.control.schedule_doc import FLAG, SEED, document

USERS = [f"user-{i}" for i in range(2000)]


def test_progress_is_counted_by_content_and_an_edit_undoes_what_follows() -> None:
    schedule = Schedule.model_validate(SEED)
    keys = [step_key(s) for s in schedule.schedule[:2]]
    assert applied_count(schedule, keys) == 2
    later_edit = Schedule.model_validate(
        {"schedule": [*SEED["schedule"][:3], {**SEED["schedule"][3], "date": "2025-05-01"}]}
    )
    assert applied_count(later_edit, keys) == 2
    earlier_edit = Schedule.model_validate(
        {"schedule": [{**SEED["schedule"][0], "percentage": 6}, *SEED["schedule"][1:]]}
    )
    assert applied_count(earlier_edit, keys) == 0


def test_a_step_in_effect() -> None:
    doc = document(SEED)
    step = ScheduleStep.model_validate({"date": "2025-01-01", "percentage": 25})
    assert in_effect(doc, FLAG, step)
    assert not in_effect(doc, FLAG, step.model_copy(update={"target": "internal_users"}))
    assert in_effect(doc, FLAG, step.model_copy(update={"target": "beta_users"}))
    removal = ScheduleStep.model_validate(SEED["schedule"][3])
    assert not in_effect(doc, FLAG, removal)
    assert in_effect(edits.delete_flag(doc, FLAG), FLAG, removal)


def assignments(doc: RoutingDocument) -> dict[tuple[str, str], str | None]:
    """(user, group) → track for every user, each with no group, beta and qa."""
    out = {}
    for user in USERS:
        for group in ("", "beta", "qa"):
            attributes = {"user_group": group} if group else {}
            out[(user, group)] = explain(doc, "chat", user, attributes).track
    return out


def test_removal_moves_nobody_when_the_flag_already_decides_everyone() -> None:
    # An earlier flag sends qa users to v3: they are not on the released track and stay.
    testers = {
        "route": "chat",
        "track": "v3",
        "conditions": [{"type": "user_group", "values": ["qa"]}],
    }
    doc = document(SEED, rollout_percentage=100, target_groups=["all_users"])
    flags = {"testers": testers, **{n: f.model_dump() for n, f in doc.feature_flags.items()}}
    doc = RoutingDocument.model_validate({**doc.model_dump(), "feature_flags": flags})
    removal = ScheduleStep.model_validate(SEED["schedule"][3])
    after = apply_step(doc, FLAG, removal)
    assert FLAG not in after.feature_flags
    assert {t.name: t.weight for t in after.routes[0].tracks} == {"v1": 0, "v2": 100, "v3": 0}
    before_tracks, after_tracks = assignments(doc), assignments(after)
    assert before_tracks == after_tracks
    assert {before_tracks[(u, "qa")] for u in USERS} == {"v3"}
    # A request without a sticky key: released at 100 % before, the whole split after.
    assert explain(doc, "chat", None, {}).track == "v2"
    assert after.routes[0].bucket_layout() == [("v2", 10_000)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"enabled": False}, "is disabled"),
        ({"override": {"disabled_for": ["user-7"]}}, "override.disabled_for"),
        ("later", "'late' would take users off 'v2'"),
    ],
)
def test_removal_that_would_move_someone_is_refused(change: Any, reason: str) -> None:
    doc = document(SEED, rollout_percentage=100, target_groups=["all_users"])
    flags = {n: f.model_dump() for n, f in doc.feature_flags.items()}
    if change == "later":
        # Evaluated after the flag: once it is gone, it would take beta users to v3.
        flags["late"] = {"route": "chat", "track": "v3", "target_groups": ["beta_users"]}
    else:
        flags[FLAG] |= change
    doc = RoutingDocument.model_validate({**doc.model_dump(), "feature_flags": flags})
    with pytest.raises(EditError) as caught:
        apply_step(doc, FLAG, ScheduleStep.model_validate(SEED["schedule"][3]))
    assert caught.value.status == 409 and reason in str(caught.value)
