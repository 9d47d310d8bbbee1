"""JSON records with a ``version``, saved by one compare-and-set script: the control plane's
rollouts (``control.rollout_store``) and flag schedules (``control.schedule``).

One script does the whole save, so nothing can come between its checks and its writes:
- the stored record must still have the version the caller read (else ``VersionChanged``),
  and a record that was deleted since it was read is not written back;
- during a leader's pass (``control.leadership.PASS_EPOCH``), the fencing epoch must still be
  the one the pass started with (else ``Fenced``): a leader deposed mid-pass saves nothing;
- events to append (the rollouts' webhook outbox) go to their stream in the same step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, Self, TypeVar

from config import jsonsafe
from config.keys import Keys
from control.leadership import PASS_EPOCH
from control.redis_client import RedisClient
from control.store import Fenced

_SAVE = """
local current = redis.call('GET', KEYS[1])
if current then
  if cjson.decode(current)['version'] ~= tonumber(ARGV[1]) then
    return 0
  end
elseif tonumber(ARGV[1]) ~= 0 then
  return 0  -- deleted since it was read (a flag removed, a rollout pruned): not brought back
end
if ARGV[4] ~= '' then
  local epoch = redis.call('GET', KEYS[3])
  if epoch ~= ARGV[4] then
    return -1
  end
end
redis.call('SET', KEYS[1], ARGV[2])
for i = 5, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[i])
end
return 1
"""


T = TypeVar("T", bound="Versioned")


class VersionChanged(Exception):
    """The record changed since it was read (a command racing the runner, say)."""


class Versioned(Protocol):
    """A stored record: a pydantic model with the version it was read at."""

    @property
    def version(self) -> int: ...

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = ...) -> Self: ...


class VersionedStore(Generic[T]):
    """Saves records of one type (``T``): rollouts, flag schedules."""

    def __init__(
        self, redis: RedisClient, keys: Keys, dump: Callable[[T], dict[str, Any]] | None = None
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._dump: Callable[[T], dict[str, Any]] = dump or _json
        self._script = redis.register_script(_SAVE)

    async def save(
        self,
        key: str,
        record: T,
        events: Sequence[str] = (),
        events_max: int = 10_000,
    ) -> T:
        """Store ``record`` at ``key`` as version ``record.version + 1`` if the stored one is
        still ``record.version``, and return it as stored. ``events`` are appended to
        ``{ns}:events`` in the same step."""
        expected = record.version
        saved = record.model_copy(update={"version": expected + 1})
        epoch = PASS_EPOCH.get()
        done = await self._script(
            keys=[key, self._keys.events, self._keys.epoch],
            args=[
                expected,
                jsonsafe.dumps(self._dump(saved)),
                events_max,
                "" if epoch is None else epoch,
                *events,
            ],
        )
        if done == -1:
            raise Fenced(int(await self._redis.get(self._keys.epoch) or 0))
        if not done:
            raise VersionChanged(key)
        return saved


def _json(record: Versioned) -> dict[str, Any]:
    return record.model_dump(mode="json")
