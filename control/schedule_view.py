"""What ``GET /v1/flags/{name}/schedule`` answers: each dated step's state, the last result
and the analysis, from the flag's schedule and its progress record (``control.schedule``).

The answer's fields are a contract (``splitgate flags schedule`` and other clients read
them); a record that does not read adds ``unreadable`` (why) and claims no step applied.
"""

from __future__ import annotations

from typing import Any

from config.flag_schedule import Schedule, step_time
from config.schedule_records import AppliedStep, LastResult, ScheduleRecord
from control.schedule_steps import applied_count


def progress(
    name: str,
    schedule: Schedule | None,
    record: ScheduleRecord | None,
    now: float,
    unreadable: str | None = None,
) -> dict[str, Any]:
    """The answer for flag ``name`` (``schedule`` None: the flag is gone). ``unreadable``:
    why the stored record does not read (``record`` is then None)."""
    applied = record.applied if record is not None else []
    analysis = record.analysis if record is not None else None
    last = record.last if record is not None else None
    if unreadable is not None:
        last = LastResult(at=now, outcome="unreadable", detail=unreadable)
    out: dict[str, Any] = {
        "flag": name,
        "last": None if last is None else last.model_dump(mode="json"),
        "analysis": None
        if analysis is None
        else {
            "since": analysis.since,
            "verdict": None
            if analysis.verdict is None
            else analysis.verdict.model_dump(mode="json"),
        },
    }
    if unreadable is not None:
        out["unreadable"] = unreadable
    if schedule is None:
        steps = [step.model_dump(mode="json") for step in applied]
        return {**out, "removed": True, "applied": len(applied), "steps": steps}
    count = applied_count(schedule, [step.key for step in applied])
    return {
        **out,
        "timezone": schedule.timezone,
        "paused": schedule.paused,
        "applied": count,
        "completed": count == len(schedule.schedule),
        "steps": _steps(schedule, applied[:count], now, unknown=unreadable is not None),
    }


def _steps(
    schedule: Schedule, applied: list[AppliedStep], now: float, *, unknown: bool
) -> list[dict[str, Any]]:
    """Each step: ``applied``, ``due`` (its time has come) or ``scheduled``; ``unknown``
    instead of ``due`` when the progress record does not read."""
    steps = []
    for index, step in enumerate(schedule.schedule):
        at = step_time(schedule, index)
        done = applied[index] if index < len(applied) else None
        state = (
            "applied"
            if done
            else ("unknown" if unknown else "due")
            if at.timestamp() <= now
            else "scheduled"
        )
        steps.append(
            {
                "step": index + 1,
                **step.model_dump(),
                "requires_analysis": schedule.requires_analysis_at(index),
                "due_at": at.isoformat(),
                "state": state,
                "applied_at": done.at if done else None,
                "generation": done.generation if done else None,
            }
        )
    return steps
