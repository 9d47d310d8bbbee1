"""A feature flag's dated schedule: its steps, their order, and which are due when.

Dates are local to the schedule's zone (``timezone``, an IANA name); the control plane
(``control.schedule``) applies each due step once, in order.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from datetime import date as date_type
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from config.base import ALL_USERS, Model, Name, Percentage, invalid

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")


def _check_date(value: object) -> object:
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as one
        if value.tzinfo is not None:
            raise ValueError("give the time without an offset: the schedule's timezone applies")
        return value.isoformat(timespec="minutes")
    if isinstance(value, date_type):
        return value.isoformat()
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM")
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date ({exc})") from None
    return value


class ScheduleStep(Model):
    """From ``date`` (midnight unless a time is given, in the schedule's zone) the flag holds
    ``percentage`` of ``target`` (a segment, or ``all_users``; none: the audience stays)."""

    date: str
    percentage: Percentage
    target: Name | None = None
    action: Literal["remove_flag"] | None = None
    requires_analysis: bool | None = None
    """Apply only once the analysis of the previous step passed (None: the schedule's
    default)."""

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        return _check_date(value)

    @model_validator(mode="after")
    def _removal_is_complete(self) -> ScheduleStep:
        if self.action == "remove_flag" and (self.percentage != 100 or self.target != ALL_USERS):
            raise invalid(
                ("action",),
                "remove_flag hands the route to the released track: the step must be "
                "percentage 100 of all_users",
                self.action,
            )
        return self


class Schedule(Model):
    """Dated steps, carried out by the control plane in order, each exactly once."""

    schedule: list[ScheduleStep] = Field(min_length=1)
    timezone: str = "UTC"
    paused: bool = False
    requires_analysis: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @model_validator(mode="after")
    def _in_order(self) -> Schedule:
        steps = self.schedule
        for i in range(1, len(steps)):
            if datetime.fromisoformat(steps[i].date) <= datetime.fromisoformat(steps[i - 1].date):
                raise invalid(
                    ("schedule", i, "date"),
                    f"{steps[i].date} is not after the previous step's {steps[i - 1].date}",
                    steps[i].date,
                )
        for i, step in enumerate(steps[:-1]):
            if step.action == "remove_flag":
                raise invalid(("schedule", i, "action"), "remove_flag must be the last step", "")
        return self

    def requires_analysis_at(self, index: int) -> bool:
        """Whether step ``index`` waits for the previous step's analysis. The first step has
        no previous step (and a flag at 0 % releases nobody to analyse), so never."""
        if index == 0:
            return False
        wanted = self.schedule[index].requires_analysis
        return self.requires_analysis if wanted is None else wanted


def zone_of(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Tokyo)"
        ) from None


def step_time(schedule: Schedule, index: int) -> datetime:
    """When step ``index`` is due, as an aware datetime."""
    local = datetime.fromisoformat(schedule.schedule[index].date)
    return local.replace(tzinfo=zone_of(schedule.timezone))


def due_steps(schedule: Schedule, applied_count: int, now: datetime) -> list[ScheduleStep]:
    """The steps to apply now, in order, given that the first ``applied_count`` were applied.

    Nothing while paused. Several overdue steps come together (apply them in turn), but the
    list stops before a step that requires the analysis of a step in the same list: that
    analysis cannot have run. The first step returned may itself require the analysis of the
    last applied step: the caller checks it before applying.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if not 0 <= applied_count <= len(schedule.schedule):
        raise ValueError(f"applied_count {applied_count} is outside 0..{len(schedule.schedule)}")
    if schedule.paused:
        return []
    due: list[ScheduleStep] = []
    for index in range(applied_count, len(schedule.schedule)):
        if step_time(schedule, index) > now:
            break
        if due and schedule.requires_analysis_at(index):
            break
        due.append(schedule.schedule[index])
    return due
