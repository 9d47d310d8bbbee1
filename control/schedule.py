"""Carries out feature flags' dated schedules (``gradual_rollout``): each step once, at its time.

Only the leader steps schedules, and its document writes carry its fencing epoch. Each pass
looks at every flag with a schedule:

- Progress lives in ``{ns}:flag-schedule:<flag>`` (``config.keys``): the steps applied, each
  by its content, the last result and the analysis since the last step. A restarted control
  plane continues from it. Editing a step that was applied makes it and every later step
  count as not applied; editing later steps keeps the progress.
- ``config.flag_schedule.due_steps`` says which steps are due (dates are local to the schedule's
  time zone). Each step is one document write, audited as ``flag_schedule_step`` with this
  runner as the actor and guarded by the record's version, then recorded. A step whose
  effect the document already shows (the record was not saved after the write, or a person
  made the change by hand) is recorded without a second write: no step is written twice.
- Paused means the document's ``gradual_rollout.paused``: audited and seen by every control
  plane. A person sets it (``POST /v1/flags/{name}/schedule/pause``), and so does this runner
  when a step fails its analysis or is refused; the reason is in the audit log and the record.
- A step that requires the previous step's analysis is applied only once the gate
  (``control.schedule_gate.judge``, a sequential test fed every pass) passes the counts since
  the previous step was applied (for the first step, since the runner first saw the
  schedule; after a resume, since the resume). Inconclusive: it waits.
- ``apply_step`` refuses a ``remove_flag`` that would move a user (see its docstring).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from config.flag_schedule import Schedule, ScheduleStep, due_steps, step_time
from config.flags import Flag
from config.keys import Keys, StoredDocument
from config.schema import RoutingDocument
from control import accumulate, edits
from control.analysis.verdict import Assessment, Verdict
from control.edits import EditError
from control.leadership import PASS_EPOCH
from control.schedule_gate import FlagWindows, fresh_analysis, judge, released_arm
from control.schedule_steps import (
    applied_count,
    apply_step,
    describe_step,
    in_effect,
    set_paused,
    step_key,
)
from control.store import Change, DocumentStore, Fenced, Stale, Superseded
from control.versioned import VersionChanged, VersionedStore

log = logging.getLogger("splitgate.control.schedule")

ACTOR = "splitgate-schedule"


class ScheduleConflict(Exception):
    """The progress record changed meanwhile (a command racing the runner)."""


class Schedules:
    def __init__(
        self,
        redis: Any,
        keys: Keys,
        store: DocumentStore,
        clock: Callable[[], float] = time.time,
        epoch: Callable[[], int | None] = lambda: None,
        report: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._store = store
        self._clock = clock
        self._epoch = epoch
        self._report = report or _log_failure
        self._versions = VersionedStore(redis, keys)

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
                record["analysis"] = fresh_analysis(self._clock())
            try:
                await self._save(record)
                return
            except ScheduleConflict:
                continue
        raise ScheduleConflict(f"the schedule of flag {name!r} keeps changing; try again")

    async def step_all(self) -> None:
        """One pass (the leader's), with the fencing epoch it started with (``PASS_EPOCH``)."""
        token = PASS_EPOCH.set(self._epoch())
        try:
            document = await self._store.read()
            if document is None:
                return
            for name, flag in document.feature_flags.items():
                if flag.gradual_rollout is None:
                    continue
                try:
                    await self.step(name)
                except ScheduleConflict as exc:  # a command came first: the next pass looks
                    log.info("flag %s: %s", name, exc)
                except Fenced as exc:
                    log.warning("flag schedules: %s; this pass ends here", exc)
                    return  # another control plane leads now
                except Exception as exc:  # one broken schedule must not stop the others
                    self._report(name, exc)
        finally:
            PASS_EPOCH.reset(token)

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
            "analysis": fresh_analysis(now),
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
            compared = totals.get(baseline) if len(arms) > 1 else None
            result, analysis["test"] = judge(totals[arms[0]], compared, analysis.get("test"))
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
                epoch=PASS_EPOCH.get(),
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
                epoch=PASS_EPOCH.get(),
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
        record["analysis"] = fresh_analysis(now)
        self._last(record, "applied" if generation is not None else "in_effect", detail)

    def _last(self, record: dict[str, Any], outcome: str, detail: str) -> None:
        record["last"] = {"at": self._clock(), "outcome": outcome, "detail": detail}

    async def _save(self, record: dict[str, Any]) -> None:
        """Compare-and-set on the record's version (``ScheduleConflict`` if it moved on),
        fenced during the leader's pass."""
        try:
            await self._versions.save(self._keys.flag_schedule(record["flag"]), record)
        except VersionChanged:
            raise ScheduleConflict(
                f"the schedule of flag {record['flag']!r} changed meanwhile"
            ) from None


def _log_failure(flag: str, exc: BaseException) -> None:
    log.error("flag %s: schedule step failed", flag, exc_info=exc)


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
