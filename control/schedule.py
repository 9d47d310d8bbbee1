"""Carries out feature flags' dated schedules (``gradual_rollout``): each step once, at its time.

Only the leader steps schedules, and its document writes carry its fencing epoch. Each pass
looks at every flag with a schedule:

- Progress lives in ``{ns}:flag-schedule:<flag>`` (``control.schedule_store``, typed by
  ``config.schedule_records``): the steps applied, each by its content, the last result and
  the analysis since the last step. A restarted control plane continues from it. Editing a
  step that was applied makes it and every later step count as not applied; editing later
  steps keeps the progress. Each change is a new record, saved by compare-and-set. A record
  that does not read is skipped (its schedule waits) and reported once per reason.
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

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from redis.exceptions import RedisError

from config.flag_schedule import ScheduleStep, due_steps
from config.flags import Flag
from config.keys import Keys, StoredDocument
from config.schedule_records import Accumulator, AppliedStep, ScheduleRecord
from config.schema import RoutingDocument
from control import accumulate, edits
from control.analysis.verdict import Assessment, Verdict
from control.edits import EditError
from control.leadership import PASS_EPOCH
from control.redis_client import RedisClient
from control.schedule_gate import (
    FlagWindows,
    fresh_analysis,
    judge,
    released_arm,
    stored_verdict,
)
from control.schedule_steps import (
    applied_count,
    apply_step,
    describe_step,
    in_effect,
    set_paused,
    step_key,
)
from control.schedule_store import ScheduleConflict, ScheduleRecords, UnreadableSchedule
from control.store import Change, DocumentStore, Fenced, Stale, Superseded

log = logging.getLogger("splitgate.control.schedule")

ACTOR = "splitgate-schedule"


class Schedules:
    def __init__(
        self,
        redis: RedisClient,
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
        self._records = ScheduleRecords(redis, keys)
        self.unreadable: dict[str, str] = {}
        """Flags whose progress record does not read → why (the last pass's; the leader's)."""

    async def record(self, name: str) -> ScheduleRecord | None:
        """``name``'s progress; ``UnreadableSchedule`` if the stored record does not read."""
        return await self._records.get(name)

    async def forget(self, name: str) -> None:
        """Drop a flag's progress (the flag was deleted, or a new flag takes its name)."""
        await self._records.forget(name)

    async def note(self, name: str, outcome: str, detail: str, *, restart: bool = False) -> None:
        """Record a command's result; ``restart`` starts the analysis period afresh (resume).
        An unreadable record is left as it is (the command itself is in the document)."""
        for _ in range(5):
            try:
                record = await self.record(name)
            except UnreadableSchedule as exc:
                log.warning("flag %s: %s not noted: %s", name, outcome, exc)
                return
            if record is None:
                return
            now = self._clock()
            record = record.noted(now, outcome, detail)
            if restart:
                record = record.analysed(fresh_analysis(now))
            try:
                await self._records.save(record)
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
                except UnreadableSchedule as exc:
                    self._unreadable(name, exc)
                except ScheduleConflict as exc:  # a command came first: the next pass looks
                    log.info("flag %s: %s", name, exc)
                except Fenced as exc:
                    log.warning("flag schedules: %s; this pass ends here", exc)
                    return  # another control plane leads now
                except Exception as exc:  # one broken schedule must not stop the others
                    self._report(name, exc)
            self.unreadable = {
                name: why for name, why in self.unreadable.items() if name in document.feature_flags
            }
        finally:
            PASS_EPOCH.reset(token)

    def _unreadable(self, name: str, exc: UnreadableSchedule) -> None:
        """Report a record that does not read once per reason, not every pass."""
        if self.unreadable.get(name) != exc.reason:
            self.unreadable[name] = exc.reason
            self._report(name, exc)

    async def step(self, name: str) -> None:
        """One look at ``name``'s schedule: apply what is due, in order, each step once."""
        document = await self._store.read()
        flag = None if document is None else document.feature_flags.get(name)
        if document is None or flag is None or flag.gradual_rollout is None:
            return
        schedule = flag.gradual_rollout
        record = await self.record(name) or await self._create(name)
        self.unreadable.pop(name, None)
        count = applied_count(schedule, record.applied_keys())
        if count == len(schedule.schedule) or schedule.paused:
            return
        now = self._clock()
        due = due_steps(schedule, count, datetime.fromtimestamp(now, UTC))
        if schedule.requires_analysis_at(count):
            # Looked at every pass, due or not, so no metric window expires uncounted.
            record, verdict = await self._analyse(document, name, flag, record, now)
            label = f"step {count + 1} ({schedule.schedule[count].date})"
            if due and verdict.verdict is Verdict.FAIL:
                why = f"{label} not applied: the analysis of the previous step failed: "
                await self._pause(document, name, record, why + verdict.reason)
                return
            if due and verdict.verdict is not Verdict.PASS:
                why = f"{label} waits for the analysis: {verdict.reason}"
                record = record.noted(now, "waiting", why)
            if not due or verdict.verdict is not Verdict.PASS:
                await self._records.save(record)
                return
        current: StoredDocument = document
        for offset, step in enumerate(due):
            done = await self._apply(current, name, count + offset, step, record)
            if done is None:
                return
            current, record = done

    async def _create(self, name: str) -> ScheduleRecord:
        now = self._clock()
        record = ScheduleRecord(flag=name, created_at=now, analysis=fresh_analysis(now), version=0)
        return await self._records.save(record)

    async def _analyse(
        self, document: RoutingDocument, name: str, flag: Flag, record: ScheduleRecord, now: float
    ) -> tuple[ScheduleRecord, Assessment]:
        """The gate's verdict now, and the record with the analysis moved on."""
        route = edits.find_route(document, flag.route)
        baseline = route.baseline_name()
        arms = [released_arm(name)] + ([baseline] if baseline != flag.track else [])
        analysis = record.analysis
        # A copy: ``accumulate`` moves it past the closed windows in place.
        counted = analysis.accumulator.model_dump(mode="json")
        test = analysis.test
        try:
            totals = await accumulate.totals(
                FlagWindows(self._redis, self._keys, name), flag.route, counted, arms, now
            )
        except (RedisError, OSError) as exc:  # the metrics are down: an error, never a failure
            result = Assessment("error_rate", Verdict.ERROR, None, "", 0, f"no metrics: {exc}")
        else:
            compared = totals.get(baseline) if len(arms) > 1 else None
            result, test = judge(totals[arms[0]], compared, test)
        moved = analysis.model_copy(
            update={
                "accumulator": Accumulator.model_validate(counted),
                "test": test,
                "verdict": stored_verdict(result, now),
            }
        )
        return record.analysed(moved), result

    async def _apply(
        self,
        document: StoredDocument,
        name: str,
        index: int,
        step: ScheduleStep,
        record: ScheduleRecord,
    ) -> tuple[StoredDocument, ScheduleRecord] | None:
        """Apply one due step: the document and the record it left, or None when this pass
        stops here."""
        flag = edits.find_flag(document, name)
        assert flag.gradual_rollout is not None
        label = f"step {index + 1} of {len(flag.gradual_rollout.schedule)} ({step.date})"
        if in_effect(document, name, step):
            done = self._applied(record, index, step, None, f"{label}: already in effect")
            return document, await self._records.save(done)
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
                guard=(self._keys.flag_schedule(name), record.version),
            )
        except (Stale, Superseded, Fenced) as exc:
            log.info("flag %s: %s not written (%s); the next pass looks again", name, label, exc)
            return None
        detail = f"{label}: {describe_step(step)}"
        saved = await self._records.save(
            self._applied(record, index, step, stored.generation, detail)
        )
        log.info("flag %s: applied %s at generation %d", name, label, stored.generation)
        return stored, saved

    async def _pause(
        self, document: StoredDocument, name: str, record: ScheduleRecord, reason: str
    ) -> None:
        """Pause the schedule in the document (audited with the reason), and say why."""
        await self._records.save(record.noted(self._clock(), "paused", reason))
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
        record: ScheduleRecord,
        index: int,
        step: ScheduleStep,
        generation: int | None,
        detail: str,
    ) -> ScheduleRecord:
        now = self._clock()
        done = AppliedStep(key=step_key(step), date=step.date, at=now, generation=generation)
        return record.stepped(index, done, fresh_analysis(now), detail)


def _log_failure(flag: str, exc: BaseException) -> None:
    log.error("flag %s: schedule step failed", flag, exc_info=exc)
