"""Where flag schedules' progress lives in Redis: ``{ns}:flag-schedule:<flag>``, one
``config.schedule_records.ScheduleRecord`` per flag, read with validation and saved by
compare-and-set on its version (``control.versioned``), fenced during the leader's pass.

A record that does not read (hand-edited, truncated, or a field this version cannot take)
raises ``UnreadableSchedule`` with the reason, never anything else: the runner skips that
flag's schedule and reports it once, ``GET /v1/flags/{name}/schedule`` shows the reason, and
the record stays as it was, to be looked at. It is never replaced by a fresh one, which
would apply the steps already applied once more; deleting it by hand does that, on purpose.
"""

from __future__ import annotations

from pydantic import ValidationError

from config.keys import Keys
from config.redis_replies import text
from config.schedule_records import ScheduleRecord
from control.analysis.sequential import RateTest
from control.redis_client import RedisClient
from control.versioned import VersionChanged, VersionedStore


class ScheduleConflict(Exception):
    """The progress record changed meanwhile (a command racing the runner)."""


class UnreadableSchedule(ValueError):
    """The stored progress of ``flag`` does not read; ``reason`` says why."""

    def __init__(self, flag: str, reason: str) -> None:
        super().__init__(
            f"the stored progress of flag {flag!r} does not read, its schedule is skipped "
            f"until the record is fixed or deleted: {reason}"
        )
        self.flag = flag
        self.reason = reason


def read_record(flag: str, raw: str) -> ScheduleRecord:
    """The record, checked as the runner will use it; ``UnreadableSchedule`` if it is not."""
    try:
        record = ScheduleRecord.model_validate_json(raw)
    except ValidationError as exc:
        raise UnreadableSchedule(flag, _short(exc)) from None
    if record.flag != flag:
        raise UnreadableSchedule(flag, f"it is the record of flag {record.flag!r}")
    test = record.analysis.test
    if test is not None:
        try:
            RateTest.restore(test.test)
        except TypeError as exc:
            raise UnreadableSchedule(flag, f"analysis.test.test: {exc}") from None
    return record


def _short(exc: ValidationError) -> str:
    """The first errors, on one line: the reason goes in logs and in an API answer."""
    reasons = [
        f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    ]
    shown = "; ".join(reasons[:3])
    return shown + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else "")


class ScheduleRecords:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._versions: VersionedStore[ScheduleRecord] = VersionedStore(redis, keys)

    async def get(self, flag: str) -> ScheduleRecord | None:
        """``flag``'s progress; None if there is none. ``UnreadableSchedule`` if it does not
        read."""
        raw = text(await self._redis.get(self._keys.flag_schedule(flag)))
        return None if raw is None else read_record(flag, raw)

    async def save(self, record: ScheduleRecord) -> ScheduleRecord:
        """Store ``record`` if the stored version is still ``record.version``; the record as
        stored (its version bumped). ``ScheduleConflict`` if it moved on (or was deleted),
        ``control.store.Fenced`` if the leader's pass lost its epoch."""
        try:
            return await self._versions.save(self._keys.flag_schedule(record.flag), record)
        except VersionChanged:
            raise ScheduleConflict(
                f"the schedule of flag {record.flag!r} changed meanwhile"
            ) from None

    async def forget(self, flag: str) -> None:
        """Drop a flag's progress (the flag was deleted, or a new flag takes its name)."""
        await self._redis.delete(self._keys.flag_schedule(flag))
