"""Feature flags: who gets a flag's track, in which order the rules apply, and when it changes.

A flag lives in the routing document (``feature_flags``, evaluated in the order listed) and
releases one track of one route. For each request, each enabled flag of its route in turn:

1. ``override.disabled_for`` (exact user ids) passes this flag by; ``override.enabled_for``
   releases the user whatever else the flag says. Deny before allow.
2. The audience: each segment named in ``target_groups`` is one condition set, the flag's own
   ``conditions`` one more; the user belongs if any set holds, and a set holds if every one
   of its conditions does. ``all_users`` is the segment of everyone. No set: nobody (a flag
   of overrides alone).
3. ``rollout_percentage`` of the audience: ``xxh64(salt ":" user) mod 10000 < percentage×100``
   with the salt ``flag:<name>`` unless given, so raising the percentage only adds users and
   two flags with the same percentage pick different users.

The first flag that releases the user decides; otherwise the route's weighted split does.

Attributes are request headers: ``attributes`` maps a name to a header, by default ``x-`` and
the name with ``_`` as ``-`` (``user_segment`` ← ``x-user-segment``). ``user_id`` is the
route's sticky key. A missing or empty attribute satisfies no condition, ``not_in``
included; a value that does not parse (a number for ``gt``, a version for ``semver_gt``)
satisfies none either.

Pure: the proxy compiles these models into its table (``proxy.table``); ``explain`` here is
the readable reference that the compiled form must agree with.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from datetime import date as date_type
from functools import lru_cache
from http.cookies import CookieError, SimpleCookie
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from xxhash import xxh64_intdigest

from config.schema import HASH_BUCKETS, Model, Name, Route, RoutingDocument, SplitgateConfig

ALL_USERS = "all_users"
"""The segment every user belongs to; it cannot be redefined."""
USER_ID = "user_id"
"""The attribute holding the route's sticky key; it has no header of its own."""

SemVer = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]
Compare = Callable[[Any, Any], bool]

SET_OPERATORS = frozenset({"in", "not_in", "prefix"})
"""Operators that take ``values``, a non-empty list of strings."""
TEXT_OPERATORS = frozenset({"equals", "not_equals"})
NUMBER_OPERATORS: dict[str, Compare] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
SEMVER_OPERATORS: dict[str, Compare] = {
    "semver_eq": operator.eq,
    "semver_gt": operator.gt,
    "semver_gte": operator.ge,
    "semver_lt": operator.lt,
    "semver_lte": operator.le,
}
OPERATORS = (
    "in",
    "not_in",
    "equals",
    "not_equals",
    "prefix",
    *NUMBER_OPERATORS,
    *SEMVER_OPERATORS,
)

_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SEMVER = re.compile(
    r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$")


def invalid(loc: tuple[str | int, ...], message: str, value: object) -> ValidationError:
    """A validation error at ``loc`` (relative to the model being validated)."""
    error = PydanticCustomError("invalid", "{reason}", {"reason": message})
    return ValidationError.from_exception_data(
        "flags", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def parse_number(text: str) -> float | None:
    """A finite decimal number, or None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_semver(text: str) -> SemVer | None:
    """``_parse_semver`` with its cache kept for values of a sane length: a header value is
    the client's to choose, and large unique ones must not fill the cache."""
    return _parse_semver(text) if len(text) <= 64 else None


@lru_cache(maxsize=4096)
def _parse_semver(text: str) -> SemVer | None:
    """A sort key with semver 2.0 precedence (``v`` prefix allowed, build ignored), or None.

    Cached: a fleet sends few distinct versions, and the regex costs more than the lookup.
    """
    found = _SEMVER.match(text)
    if found is None:
        return None
    major, minor, patch, pre = found.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


def _check_attribute(value: str) -> str:
    if not _ATTRIBUTE.match(value):
        raise ValueError(
            f"{value!r}: an attribute name is lower-case letters, digits and '_', "
            "starting with a letter"
        )
    return value


AttributeName = Annotated[str, AfterValidator(_check_attribute)]


def default_header(attribute: str) -> str:
    """The header an attribute is read from when ``attributes`` does not name one."""
    return "x-" + attribute.replace("_", "-")


def _check_percentage(value: float) -> float:
    if value != value or value < 0 or value > 100:
        raise ValueError("a percentage is between 0 and 100")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise ValueError("a percentage has at most two decimals (0.01 % steps)")
    return value


Percentage = Annotated[float, AfterValidator(_check_percentage)]
UserId = Annotated[str, Field(min_length=1, max_length=256)]


class Condition(Model):
    """One test of one attribute. ``{type: region, values: [jp]}`` (the seed's form) means
    ``{attribute: region, operator: in, values: [jp]}``."""

    attribute: AttributeName = Field(validation_alias=AliasChoices("attribute", "type"))
    operator: str = "in"
    values: list[str] | None = None
    value: str | float | None = None

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        if value not in OPERATORS:
            raise ValueError(f"unknown operator {value!r}: use one of {', '.join(OPERATORS)}")
        return value

    @field_validator("value", mode="before")
    @classmethod
    def _not_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a number or a string, not true/false")
        return value

    @model_validator(mode="after")
    def _operand_fits(self) -> Condition:
        op = self.operator
        if op in SET_OPERATORS:
            if self.value is not None:
                raise invalid(("value",), f"{op} takes 'values' (a list), not 'value'", self.value)
            if not self.values:
                raise invalid(("values",), f"empty audience: {op} needs at least one value", [])
            if op == "prefix" and "" in self.values:
                raise invalid(("values",), "an empty prefix would match everyone", self.values)
            return self
        if self.values is not None:
            raise invalid(("values",), f"{op} takes one 'value', not 'values'", self.values)
        if op in TEXT_OPERATORS and not isinstance(self.value, str):
            raise invalid(("value",), f"{op} compares text: give a string value", self.value)
        if op in NUMBER_OPERATORS and not (
            isinstance(self.value, float) and math.isfinite(self.value)
        ):
            raise invalid(("value",), f"{op} compares numbers: give a number", self.value)
        if op in SEMVER_OPERATORS and (
            not isinstance(self.value, str) or parse_semver(self.value) is None
        ):
            raise invalid(
                ("value",), f"{op} needs a version such as '2.3.0' or 'v2.3.0-beta.1'", self.value
            )
        return self

    def key(self) -> tuple[str, str, object]:
        """Equal for conditions that always agree: the compiled form evaluates those once."""
        if self.values is not None:
            return (self.attribute, self.operator, frozenset(self.values))
        return (self.attribute, self.operator, self.value)

    def holds(self, value: str | None) -> bool:
        """Whether this condition holds for an attribute's value (None: not sent)."""
        if not value:
            return False
        op = self.operator
        if op == "in" or op == "not_in":
            assert self.values is not None
            return (value in self.values) == (op == "in")
        if op == "prefix":
            assert self.values is not None
            return value.startswith(tuple(self.values))
        if op in TEXT_OPERATORS:
            return (value == self.value) == (op == "equals")
        if op in NUMBER_OPERATORS:
            number = parse_number(value)
            return number is not None and NUMBER_OPERATORS[op](number, self.value)
        version = parse_semver(value)
        assert isinstance(self.value, str)
        return version is not None and SEMVER_OPERATORS[op](version, parse_semver(self.value))


class Segment(Model):
    """A named condition set (all must hold), defined once and named by flags' target groups."""

    description: str = ""
    conditions: list[Condition]

    @field_validator("conditions")
    @classmethod
    def _not_empty(cls, value: list[Condition]) -> list[Condition]:
        if not value:
            raise ValueError("empty audience: a segment needs at least one condition")
        return value


class UserOverrides(Model):
    enabled_for: list[UserId] = Field(default_factory=list)
    disabled_for: list[UserId] = Field(default_factory=list)


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


class Flag(Model):
    """Releases ``track`` of ``route`` to an audience; see the module's docstring."""

    route: Name
    track: Name
    enabled: bool = True
    rollout_percentage: Percentage = 100.0
    target_groups: list[Name] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    override: UserOverrides = UserOverrides()
    salt: str | None = Field(default=None, min_length=1, max_length=128)
    description: str = ""
    gradual_rollout: Schedule | None = None

    @model_validator(mode="after")
    def _has_audience(self) -> Flag:
        if not self.target_groups and not self.conditions and not self.override.enabled_for:
            raise invalid(
                ("target_groups",),
                "empty audience: name segments in target_groups (all_users for everyone), "
                "give conditions, or list users in override.enabled_for",
                [],
            )
        return self

    def condition_sets(self, segments: Mapping[str, Segment]) -> list[tuple[str, list[Condition]]]:
        """(label, conditions) of each set, in order: segments named, then ``conditions``."""
        sets = [
            (name, [] if name == ALL_USERS else segments[name].conditions)
            for name in self.target_groups
        ]
        if self.conditions:
            sets.append(("conditions", self.conditions))
        return sets


def flag_salt(name: str, flag: Flag) -> str:
    return flag.salt if flag.salt is not None else f"flag:{name}"


def bucket_of(salt: str, key: str) -> int:
    """``xxh64(salt ":" key) mod 10000``: the same mapping as ``proxy.hashing``."""
    data = salt.encode() + b":" + key.encode("utf-8", "surrogateescape")
    return int(xxh64_intdigest(data)) % HASH_BUCKETS


def threshold(flag: Flag) -> int:
    """Buckets ``[0, threshold)`` of the flag's hash are released."""
    return round(flag.rollout_percentage * 100)


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


Outcome = Literal["disabled", "denied", "allowed", "not_in_audience", "held_out", "released"]
Rule = Literal["enabled_for", "rollout", "weights", "random"]


class FlagStep(Model):
    """What one flag made of the request."""

    flag: str
    outcome: Outcome
    reason: str
    bucket: int | None = None


class Explanation(Model):
    """Which track a request gets and why: the answer to "why did this user see v2?"."""

    route: str
    user_id: str | None
    attributes: dict[str, str]
    track: str | None
    """None: the request has no sticky key and the matched rule draws at random."""
    flag: str | None
    """The flag that released the request, if one did."""
    rule: Rule
    reason: str
    flags: list[FlagStep]
    bucket: int | None = None
    """The deciding bucket: the flag's for ``rollout``, the route's for ``weights``."""


def request_facts(
    document: RoutingDocument,
    route_name: str,
    headers: Mapping[str, str],
    client_ip: str | None = None,
) -> tuple[str | None, dict[str, str]]:
    """The sticky key and the attributes the proxy would read from these (lower-case) headers.

    ``document`` is a ``RoutingDocument``. ``client_ip`` is taken as given (the proxy's
    ``X-Forwarded-For`` rules for trusted peers are its own).
    """
    route = document.route(route_name)
    if route is None:
        raise ValueError(f"no route named {route_name!r}")
    key: str | None = None
    for source in route.stickiness:
        kind, _, name = source.partition(":")
        value = headers.get(name) if kind == "header" else None
        if kind == "cookie":
            value = _cookie(headers.get("cookie"), name)
        elif kind == "client_ip":
            value = client_ip
        if value:
            key = value
            break
    attributes = {}
    for attribute in sorted(attributes_used(document, route_name) - {USER_ID}):
        value = headers.get(document.attributes.get(attribute, default_header(attribute)))
        if value:
            attributes[attribute] = value
    return key, attributes


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def flags_of(document: RoutingDocument, route_name: str) -> list[tuple[str, Flag]]:
    """The route's flags in evaluation order (``document`` is a ``RoutingDocument``)."""
    flags: dict[str, Flag] = document.feature_flags
    return [(name, flag) for name, flag in flags.items() if flag.route == route_name]


def attributes_used(document: RoutingDocument, route_name: str) -> set[str]:
    """Attributes that some enabled flag of the route tests."""
    used: set[str] = set()
    for _, flag in flags_of(document, route_name):
        if flag.enabled:
            for _, conditions in flag.condition_sets(document.segments):
                used.update(c.attribute for c in conditions)
    return used


def explain(
    document: RoutingDocument, route_name: str, user_id: str | None, attributes: Mapping[str, str]
) -> Explanation:
    """The track a request with this sticky key and these attributes gets, and why.

    ``attributes`` maps attribute names to values (``request_facts`` reads them from
    headers). The trusted override header, which wins over everything, is not considered.
    """
    route = document.route(route_name)
    if route is None:
        raise ValueError(f"no route named {route_name!r}")
    values = {**attributes, USER_ID: user_id} if user_id else dict(attributes)
    steps: list[FlagStep] = []
    for name, flag in flags_of(document, route_name):
        steps.append(_evaluate(name, flag, document.segments, user_id, values))
        if steps[-1].outcome in ("allowed", "released"):
            break

    def answer(track: str | None, flag: str | None, rule: Rule, reason: str) -> Explanation:
        bucket = steps[-1].bucket if rule == "rollout" else None
        if rule == "weights" and user_id is not None:
            bucket = bucket_of(route.hash_salt(), user_id)
        return Explanation(
            route=route_name,
            user_id=user_id,
            attributes=dict(attributes),
            track=track,
            flag=flag,
            rule=rule,
            reason=reason,
            flags=steps,
            bucket=bucket,
        )

    last = steps[-1] if steps else None
    if last is not None and last.outcome == "allowed":
        return answer(
            document.feature_flags[last.flag].track, last.flag, "enabled_for", last.reason
        )
    if last is not None and last.outcome == "released":
        flag = document.feature_flags[last.flag]
        if user_id is None and threshold(flag) < HASH_BUCKETS:
            return answer(None, None, "random", last.reason)
        return answer(flag.track, last.flag, "rollout", last.reason)
    passed = "; ".join(s.reason for s in steps) + ("; " if steps else "")
    if user_id is None:
        return answer(None, None, "random", passed + "no sticky key: the split draws at random")
    bucket = bucket_of(route.hash_salt(), user_id)
    track = next(name for name, upper in route.bucket_layout() if bucket < upper)
    return answer(
        track, None, "weights", f"{passed}bucket {bucket} of the weighted split: {track!r}"
    )


def _evaluate(
    name: str,
    flag: Flag,
    segments: Mapping[str, Segment],
    user_id: str | None,
    values: Mapping[str, str],
) -> FlagStep:
    def step(outcome: Outcome, reason: str, bucket: int | None = None) -> FlagStep:
        return FlagStep(flag=name, outcome=outcome, reason=reason, bucket=bucket)

    if not flag.enabled:
        return step("disabled", f"flag {name!r} is disabled")
    if user_id is not None and user_id in flag.override.disabled_for:
        return step("denied", f"{user_id!r} is in {name}.override.disabled_for")
    if user_id is not None and user_id in flag.override.enabled_for:
        return step("allowed", f"{user_id!r} is in {name}.override.enabled_for")
    matched = _matched_set(flag, segments, values)
    if matched is None:
        return step("not_in_audience", f"no condition set of flag {name!r} holds")
    share = threshold(flag)
    where = f"{matched} matched"
    if share >= HASH_BUCKETS:
        return step("released", f"{where} and the flag is at 100 %")
    if share == 0:
        return step("held_out", f"{where} but the flag is at 0 %")
    if user_id is None:
        return step(
            "released",
            f"{where}; with no sticky key {flag.rollout_percentage:g} % of such requests "
            "get the flag at random",
        )
    bucket = bucket_of(flag_salt(name, flag), user_id)
    if bucket < share:
        return step("released", f"{where} and bucket {bucket} < {share}", bucket)
    return step("held_out", f"{where} but bucket {bucket} ≥ {share}", bucket)


def _matched_set(
    flag: Flag, segments: Mapping[str, Segment], values: Mapping[str, str]
) -> str | None:
    for label, conditions in flag.condition_sets(segments):
        if all(c.holds(values.get(c.attribute)) for c in conditions):
            return "conditions" if label == "conditions" else f"segment {label!r}"
    return None


def check_references(
    routes: Sequence[Route],
    segments: Mapping[str, Segment],
    flags: Mapping[str, Flag],
    attributes: Mapping[str, str],
) -> None:
    """Cross-references of the document; raises a ``ValidationError`` naming each field."""
    errors: list[InitErrorDetails] = []

    def fail(loc: tuple[str | int, ...], message: str, value: object) -> None:
        error = PydanticCustomError("invalid", "{reason}", {"reason": message})
        errors.append(InitErrorDetails(type=error, loc=loc, input=value))

    if ALL_USERS in segments:
        fail(("segments", ALL_USERS), "all_users is built in: it is everyone", ALL_USERS)
    if USER_ID in attributes:
        fail(("attributes", USER_ID), "user_id is the route's sticky key, not a header", USER_ID)
    known = {r.name: {t.name for t in r.tracks} for r in routes}
    groups = set(segments) | {ALL_USERS}
    for name, flag in flags.items():
        at = ("feature_flags", name)
        if flag.route not in known:
            fail((*at, "route"), f"no route named {flag.route!r}", flag.route)
        elif flag.track not in known[flag.route]:
            fail((*at, "track"), f"route {flag.route!r} has no track {flag.track!r}", flag.track)
        for i, group in enumerate(flag.target_groups):
            if group not in groups:
                fail((*at, "target_groups", i), f"unknown segment {group!r}", group)
        steps = flag.gradual_rollout.schedule if flag.gradual_rollout else []
        for i, s in enumerate(steps):
            if s.target is not None and s.target not in groups:
                where = (*at, "gradual_rollout", "schedule", i, "target")
                fail(where, f"unknown segment {s.target!r}", s.target)
    if errors:
        raise ValidationError.from_exception_data("RoutingDocument", errors)


# The document's flag fields are annotated with the models above; resolve them now.
RoutingDocument.model_rebuild()
SplitgateConfig.model_rebuild()
