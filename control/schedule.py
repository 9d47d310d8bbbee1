"""Carries out feature flags' dated schedules (``gradual_rollout``): each step once, at its time.

Only the leader steps schedules, and its document writes carry its fencing epoch. Each pass
looks at every flag with a schedule:

- Progress lives in ``{ns}:flag-schedule:<flag>`` (``config.keys``): the steps applied, each
  by its content, the last result and the analysis since the last step. A restarted control
  plane continues from it. Editing a step that was applied makes it and every later step
  count as not applied; editing later steps keeps the progress.
- ``config.flags.due_steps`` says which steps are due (dates are local to the schedule's
  time zone). Each step is one document write, audited as ``flag_schedule_step`` with this
  runner as the actor and guarded by the record's version, then recorded. A step whose
  effect the document already shows (the record was not saved after the write, or a person
  made the change by hand) is recorded without a second write: no step is written twice.
- Paused means the document's ``gradual_rollout.paused``: audited and seen by every control
  plane. A person sets it (``POST /v1/flags/{name}/schedule/pause``), and so does this runner
  when a step fails its analysis or is refused; the reason is in the audit log and the record.
- A step that requires the previous step's analysis is applied only once ``judge`` passes
  the counts since the previous step was applied (for the first step, since the runner first
  saw the schedule; after a resume, since the resume). Inconclusive: it waits.
- ``apply_step`` refuses a ``remove_flag`` that would move a user (see its docstring).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from config import jsonsafe
from config.flags import Flag, Schedule, ScheduleStep, due_steps, step_time
from config.keys import Keys, StoredDocument
from config.metrics import WINDOW_S, TrackWindow, merge_flag_windows, merge_windows
from config.schema import RoutingDocument
from config.thresholds import parse_threshold
from control import accumulate, edits
from control.analysis.compare import two_proportions
from control.analysis.verdict import Assessment, Verdict, assess
from control.edits import EditError, FieldError
from control.store import Change, DocumentStore, Fenced, Stale, Superseded
from control.windows import WindowReader

log = logging.getLogger("splitgate.control.schedule")

ACTOR = "splitgate-schedule"
MIN_REQUESTS = 100
"""Released requests since the previous step below which the analysis cannot judge."""
MARGIN = 0.01
"""How much higher (in points of error rate) the released audience may be than the baseline."""
CONFIDENCE = 0.95
CEILING = parse_threshold("< 5%", "error_rate")
"""The released audience's error rate limit when the baseline served too little to compare."""

_SAVE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['version'] ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class ScheduleConflict(Exception):
    """The progress record changed meanwhile (a command racing the runner)."""


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


def judge(released: TrackWindow, baseline: TrackWindow | None) -> Assessment:
    """The analysis gate of a step, from the counts since the previous step (pure).

    The released audience's error rate (the requests the flag released, every error class)
    against the route's baseline track's: ``pass`` when, at 95 % confidence, it is at most
    ``MARGIN`` above the baseline's (the Newcombe interval of the difference lies below it),
    ``fail`` when it is more than that above (the interval lies above it), ``inconclusive`` in
    between or with fewer than ``MIN_REQUESTS`` released requests. When the baseline served
    fewer than ``MIN_REQUESTS`` (the flag released nearly everyone, or releases the baseline
    itself: ``baseline`` None) the released rate is held to ``CEILING`` instead.
    """
    n, errors = released.requests, sum(released.errors.values())
    against = f"at most baseline + {MARGIN * 100:g} points"
    if n < MIN_REQUESTS:
        return Assessment(
            "error_rate",
            Verdict.INCONCLUSIVE,
            errors / n if n else None,
            against,
            n,
            f"{n} released requests since the previous step, {MIN_REQUESTS} needed",
        )
    if baseline is None or baseline.requests < MIN_REQUESTS:
        result = assess("error_rate", CEILING, released, CONFIDENCE)
        return replace(result, reason=f"{result.reason} (too little baseline traffic to compare)")
    b_errors = sum(baseline.errors.values())
    c = two_proportions("error_rate", b_errors, baseline.requests, errors, n, CONFIDENCE)
    assert c.interval is not None and c.difference is not None
    low, high = c.interval
    figures = (
        f"released {errors}/{n} vs baseline {b_errors}/{baseline.requests}: "
        f"{c.difference * 100:+.2f} points (95 % interval {low * 100:+.2f} to {high * 100:+.2f})"
    )
    if low > MARGIN:
        verdict, reason = Verdict.FAIL, f"error rate above {against}: {figures}"
    elif high <= MARGIN:
        verdict, reason = Verdict.PASS, f"error rate {against}: {figures}"
    else:
        verdict, reason = Verdict.INCONCLUSIVE, f"not yet clear: {figures}"
    return Assessment("error_rate", verdict, c.difference, against, n, reason)


def released_arm(flag: str) -> str:
    """The arm of a flag's released requests (``:`` is in no track name, so none collides)."""
    return f"flag:{flag}"


class FlagWindows(WindowReader):
    """A route's windows, where the requests ``flag`` released also count as one more arm,
    ``released_arm(flag)`` (their track counts them in its totals as well)."""

    def __init__(self, redis: Any, keys: Keys, flag: str) -> None:
        super().__init__(redis, keys)
        self._flag = flag

    async def read_each(
        self, route: str, first: int, last: int
    ) -> list[tuple[int, dict[tuple[str, str], TrackWindow]]]:
        starts = range(first, last + WINDOW_S, WINDOW_S)
        pipe = self._redis.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(self._keys.metrics_window(route, start))
        windows = []
        for start, fields in zip(starts, await pipe.execute(), strict=True):
            merged = merge_windows([fields])
            for (flag, _, version), counts in merge_flag_windows([fields]).items():
                if flag == self._flag:
                    key = (released_arm(flag), version)
                    merged[key] = accumulate.add(merged.get(key, TrackWindow()), counts)
            windows.append((start, merged))
        return windows


def _fresh_analysis(now: float) -> dict[str, Any]:
    return {"since": now, "accumulator": accumulate.new_accumulator(now), "verdict": None}


class Schedules:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        store: DocumentStore,
        clock: Callable[[], float] = time.time,
        epoch: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._clock = clock
        self._epoch = epoch
        self._save_script = redis.register_script(_SAVE)

    async def record(self, name: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._keys.flag_schedule(name))
        return None if raw is None else dict(json.loads(raw))

    async def forget(self, name: str) -> None:
        """Drop a flag's progress (the flag was deleted, or a new flag takes its name)."""
        await self._redis.delete(self._keys.flag_schedule(name))

    async def note(self, name: str, outcome: str, detail: str, *, restart: bool = False) -> None:
        """Record a command's result; ``restart`` starts the analysis period afresh (resume)."""
        for _ in range(5):
            record = await self.record(name)
            if record is None:
                return
            self._last(record, outcome, detail)
            if restart:
                record["analysis"] = _fresh_analysis(self._clock())
            try:
                await self._save(record)
                return
            except ScheduleConflict:
                continue
        raise ScheduleConflict(f"the schedule of flag {name!r} keeps changing; try again")

    async def step_all(self) -> None:
        document = await self._store.read()
        if document is None:
            return
        for name, flag in document.feature_flags.items():
            if flag.gradual_rollout is None:
                continue
            try:
                await self.step(name)
            except ScheduleConflict as exc:  # a command came first: the next pass looks again
                log.info("flag %s: %s", name, exc)
            except Exception:  # one broken schedule must not stop the others
                log.exception("flag %s: schedule step failed", name)

    async def step(self, name: str) -> None:
        """One look at ``name``'s schedule: apply what is due, in order, each step once."""
        document = await self._store.read()
        flag = None if document is None else document.feature_flags.get(name)
        if document is None or flag is None or flag.gradual_rollout is None:
            return
        schedule = flag.gradual_rollout
        record = await self.record(name) or await self._create(name)
        count = applied_count(schedule, [entry["key"] for entry in record["applied"]])
        if count == len(schedule.schedule) or schedule.paused:
            return
        now = self._clock()
        due = due_steps(schedule, count, datetime.fromtimestamp(now, UTC))
        if schedule.requires_analysis_at(count):
            # Looked at every pass, due or not, so no metric window expires uncounted.
            verdict = await self._analyse(document, name, flag, record, now)
            label = f"step {count + 1} ({schedule.schedule[count].date})"
            if due and verdict.verdict is Verdict.FAIL:
                why = f"{label} not applied: the analysis of the previous step failed: "
                await self._pause(document, name, record, why + verdict.reason)
                return
            if due and verdict.verdict is not Verdict.PASS:
                self._last(record, "waiting", f"{label} waits for the analysis: {verdict.reason}")
            if not due or verdict.verdict is not Verdict.PASS:
                await self._save(record)
                return
        current: StoredDocument = document
        for offset, step in enumerate(due):
            written = await self._apply(current, name, count + offset, step, record)
            if written is None:
                return
            current = written

    async def _create(self, name: str) -> dict[str, Any]:
        now = self._clock()
        record = {
            "flag": name,
            "created_at": now,
            "applied": [],
            "last": None,
            "analysis": _fresh_analysis(now),
            "version": 0,
        }
        await self._save(record)
        return record

    async def _analyse(
        self, document: RoutingDocument, name: str, flag: Flag, record: dict[str, Any], now: float
    ) -> Assessment:
        route = edits.find_route(document, flag.route)
        baseline = route.baseline_name()
        arms = [released_arm(name)] + ([baseline] if baseline != flag.track else [])
        analysis = record["analysis"]
        try:
            totals = await accumulate.totals(
                FlagWindows(self._redis, self._keys, name),
                flag.route,
                analysis["accumulator"],
                arms,
                now,
            )
        except (RedisError, OSError) as exc:  # the metrics are down: an error, never a failure
            result = Assessment("error_rate", Verdict.ERROR, None, "", 0, f"no metrics: {exc}")
        else:
            result = judge(totals[arms[0]], totals.get(baseline) if len(arms) > 1 else None)
        analysis["verdict"] = {**asdict(result), "at": now}
        return result

    async def _apply(
        self,
        document: StoredDocument,
        name: str,
        index: int,
        step: ScheduleStep,
        record: dict[str, Any],
    ) -> StoredDocument | None:
        """Apply one due step; the document it left, or None when this pass stops here."""
        flag = edits.find_flag(document, name)
        assert flag.gradual_rollout is not None
        label = f"step {index + 1} of {len(flag.gradual_rollout.schedule)} ({step.date})"
        if in_effect(document, name, step):
            self._applied(record, index, step, None, f"{label}: already in effect")
            await self._save(record)
            return document
        try:
            new = apply_step(document, name, step)
        except EditError as exc:
            await self._pause(document, name, record, f"{label} refused: {exc}")
            return None
        after = new.feature_flags.get(name)
        try:
            stored = await self._store.write(
                new,
                document.generation,
                Change(
                    ACTOR, f"{label}: {describe_step(step)}", "flag_schedule_step", f"flags/{name}"
                ),
                before=flag.model_dump(),
                after=None if after is None else after.model_dump(),
                epoch=self._epoch(),
                guard=(self._keys.flag_schedule(name), record["version"]),
            )
        except (Stale, Superseded, Fenced) as exc:
            log.info("flag %s: %s not written (%s); the next pass looks again", name, label, exc)
            return None
        self._applied(record, index, step, stored.generation, f"{label}: {describe_step(step)}")
        await self._save(record)
        log.info("flag %s: applied %s at generation %d", name, label, stored.generation)
        return stored

    async def _pause(
        self, document: StoredDocument, name: str, record: dict[str, Any], reason: str
    ) -> None:
        """Pause the schedule in the document (audited with the reason), and say why."""
        self._last(record, "paused", reason)
        await self._save(record)
        flag = edits.find_flag(document, name)
        paused = set_paused(document, name, True)
        after = paused.feature_flags[name]
        try:
            await self._store.write(
                paused,
                document.generation,
                Change(ACTOR, reason, "flag_schedule_pause", f"flags/{name}"),
                before=flag.model_dump(),
                after=after.model_dump(),
                epoch=self._epoch(),
            )
        except (Stale, Fenced) as exc:
            log.info("flag %s: pause not written (%s); the next pass looks again", name, exc)
            return
        log.warning("flag %s: schedule paused: %s", name, reason)

    def _applied(
        self,
        record: dict[str, Any],
        index: int,
        step: ScheduleStep,
        generation: int | None,
        detail: str,
    ) -> None:
        now = self._clock()
        entry = {"key": step_key(step), "date": step.date, "at": now, "generation": generation}
        record["applied"] = [*record["applied"][:index], entry]
        record["analysis"] = _fresh_analysis(now)
        self._last(record, "applied" if generation is not None else "in_effect", detail)

    def _last(self, record: dict[str, Any], outcome: str, detail: str) -> None:
        record["last"] = {"at": self._clock(), "outcome": outcome, "detail": detail}

    async def _save(self, record: dict[str, Any]) -> None:
        """Compare-and-set on the record's version; ``ScheduleConflict`` if it moved on."""
        expected = record["version"]
        record["version"] = expected + 1
        if not await self._save_script(
            keys=[self._keys.flag_schedule(record["flag"])], args=[expected, jsonsafe.dumps(record)]
        ):
            record["version"] = expected
            raise ScheduleConflict(f"the schedule of flag {record['flag']!r} changed meanwhile")


def progress(
    name: str, schedule: Schedule | None, record: dict[str, Any] | None, now: float
) -> dict[str, Any]:
    """What ``GET /v1/flags/{name}/schedule`` answers: each step's state and what is next."""
    applied = record["applied"] if record is not None else []
    analysis = record["analysis"] if record is not None else None
    out: dict[str, Any] = {
        "flag": name,
        "last": record["last"] if record is not None else None,
        "analysis": None
        if analysis is None
        else {"since": analysis["since"], "verdict": analysis["verdict"]},
    }
    if schedule is None:
        return {**out, "removed": True, "applied": len(applied), "steps": applied}
    count = applied_count(schedule, [entry["key"] for entry in applied])
    steps = []
    for index, step in enumerate(schedule.schedule):
        at = step_time(schedule, index)
        done = applied[index] if index < count else None
        state = "applied" if done else "due" if at.timestamp() <= now else "scheduled"
        steps.append(
            {
                "step": index + 1,
                **step.model_dump(),
                "requires_analysis": schedule.requires_analysis_at(index),
                "due_at": at.isoformat(),
                "state": state,
                "applied_at": done["at"] if done else None,
                "generation": done["generation"] if done else None,
            }
        )
    return {
        **out,
        "timezone": schedule.timezone,
        "paused": schedule.paused,
        "applied": count,
        "completed": count == len(schedule.schedule),
        "steps": steps,
    }
