"""A schedule's steps as edits of the routing document, pure: which were applied, what each
does, and the refusal of a removal that would move someone."""

from __future__ import annotations

from collections.abc import Sequence

from config.flag_schedule import Schedule, ScheduleStep
from config.flags import Flag
from config.schema import RoutingDocument
from control import edits
from control.edits import EditError, FieldError


def step_key(step: ScheduleStep) -> str:
    """What identifies an applied step: its content (whether it needs analysis aside)."""
    return step.model_dump_json(exclude={"requires_analysis"})


def applied_count(schedule: Schedule, applied: Sequence[str]) -> int:
    """How many leading steps were applied, given the keys recorded in order."""
    count = 0
    for step, key in zip(schedule.schedule, applied, strict=False):
        if step_key(step) != key:
            break
        count += 1
    return count


def describe_step(step: ScheduleStep) -> str:
    audience = f" of {step.target}" if step.target else ""
    removal = ", then remove the flag" if step.action == "remove_flag" else ""
    return f"{step.percentage:g} %{audience}{removal}"


def in_effect(document: RoutingDocument, name: str, step: ScheduleStep) -> bool:
    """Whether the document already holds what ``step`` would make of the flag."""
    flag = document.feature_flags.get(name)
    if flag is None:
        return step.action == "remove_flag"
    if step.action == "remove_flag" or flag.rollout_percentage != step.percentage:
        return False
    return step.target is None or (flag.target_groups == [step.target] and not flag.conditions)


def apply_step(document: RoutingDocument, name: str, step: ScheduleStep) -> RoutingDocument:
    """``edits.apply_schedule_step``, refusing (409) a removal that would move someone.

    At 100 % of all_users the flag decides every request of its route but those of flags
    evaluated before it, so removing it while the route's weights give its track 100 % moves
    nobody, with three exceptions. ``apply_schedule_step`` refuses two (the flag is disabled,
    or ``disabled_for`` lists users); the third is checked here: an enabled flag of the route
    evaluated *after* it that releases another track would take over its users once it is
    gone.
    """
    if step.action == "remove_flag":
        flag = edits.find_flag(document, name)
        names = list(document.feature_flags)
        later = [
            other
            for other in names[names.index(name) + 1 :]
            if _could_release(document.feature_flags[other], flag)
        ]
        if later:
            listed = ", ".join(map(repr, later))
            raise EditError(
                [
                    FieldError(
                        "flag",
                        f"flag {listed} would take users off {flag.track!r} once {name!r} "
                        "is removed: remove or disable it first",
                    )
                ],
                status=409,
            )
    return edits.apply_schedule_step(document, name, step)


def _could_release(other: Flag, flag: Flag) -> bool:
    if other.route != flag.route or other.track == flag.track or not other.enabled:
        return False
    return other.rollout_percentage > 0 or bool(other.override.enabled_for)


def set_paused(document: RoutingDocument, name: str, paused: bool) -> RoutingDocument:
    flag = edits.find_flag(document, name)
    if flag.gradual_rollout is None:
        raise EditError(
            [FieldError("flag.gradual_rollout", f"flag {name!r} has no schedule")], status=409
        )
    schedule = {**flag.gradual_rollout.model_dump(), "paused": paused}
    return edits.patch_flag(document, name, {"gradual_rollout": schedule})
