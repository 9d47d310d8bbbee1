"""The demo's live feed: one line for each change to the routing document and each rollout event.

It follows two Redis streams the control plane already writes: the audit stream (every
weight change, track registration and flag change, with who and why) and the rollout event
outbox (phases, approvals, promotions, rollbacks). It reads them with ``XREAD BLOCK`` from
the newest entry at start, so it shows what happens from now on, and never stops the demo:
a Redis error is logged once, and it reads again from where it was.

    17:42:03  weights  chat  stable=80 canary=20  (gen 14, by splitgate-rollout: Phase 1: 20%)
    17:42:33  rollout  chat-1a2b3c4d  phase  Phase 2: 50%
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from config.keys import Keys, StoredDocument
from config.redis_replies import entries, stream_reads
from control.redis_client import RedisClient

log = logging.getLogger("splitgate.demo.feed")

BLOCK_MS = 1000
"""How long one XREAD waits for news; below the client's socket timeout (2 s)."""
RETRY_S = 1.0

FLAG_ACTIONS = {
    "put_flag": "set",
    "patch_flag": "changed",
    "delete_flag": "deleted",
    "flag_schedule_step": "schedule step",
    "flag_schedule_pause": "schedule paused",
    "pause_schedule": "schedule paused",
    "resume_schedule": "schedule resumed",
}


def clock(at: float) -> str:
    """Local wall-clock time of a timestamp, to the second."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def weights_text(route: Mapping[str, Any]) -> str:
    """``stable=80 canary=20``: each track's weight, in the route's order."""
    return " ".join(f"{t['name']}={t['weight']:g}" for t in route.get("tracks", []))


def _why(record: Mapping[str, Any]) -> str:
    reason = str(record.get("reason") or "").strip()
    who = f"by {record.get('actor') or '?'}"
    return f"(gen {record.get('generation')}, {who}{': ' + reason if reason else ''})"


def audit_line(record: Mapping[str, Any], route: Mapping[str, Any] | None = None) -> str:
    """One audit record as a line. ``route`` is the route as written, when the record does
    not carry it (the rollouts' writes keep no ``after``)."""
    at = clock(float(record.get("time") or 0))
    target = str(record.get("target") or "")
    action = str(record.get("action") or "")
    parts = target.split("/")
    after = record.get("after")
    if route is None and isinstance(after, Mapping) and parts[0] == "routes":
        route = after
    if parts[0] == "routes" and action == "set_weights" and len(parts) >= 2:
        weights = weights_text(route) if route is not None else "(weights superseded)"
        return f"{at}  weights  {parts[1]}  {weights}  {_why(record)}"
    if parts[0] == "routes" and action == "put_track" and len(parts) >= 4:
        return (
            f"{at}  track    {parts[1]}/{parts[3]}  {_track_text(route, parts[3])}  {_why(record)}"
        )
    if parts[0] == "flags" and len(parts) >= 2:
        what = FLAG_ACTIONS.get(action, action)
        return f"{at}  flag     {parts[1]}  {what}  {_why(record)}"
    return f"{at}  change   {target}  {action}  {_why(record)}"


def _track_text(route: Mapping[str, Any] | None, name: str) -> str:
    for track in (route or {}).get("tracks", []):
        if track.get("name") == name:
            upstreams = ",".join(track.get("upstreams", []))
            return f"{track.get('version')} at {upstreams} weight {track.get('weight', 0):g}"
    return "registered"


def event_line(event: Mapping[str, Any]) -> str:
    """One rollout event as a line: ``17:42:33  rollout  chat-1a2b3c4d  phase  Phase 2: 50%``."""
    at = clock(float(event.get("at") or 0))
    detail = str(event.get("detail") or "").strip()
    line = f"{at}  rollout  {event.get('rollout')}  {event.get('kind')}"
    return f"{line}  {detail}" if detail else line


def needs_route(record: Mapping[str, Any]) -> str | None:
    """The route whose written state the line needs from the document, if the record lacks it."""
    parts = str(record.get("target") or "").split("/")
    if parts[0] == "routes" and len(parts) >= 2 and not isinstance(record.get("after"), Mapping):
        return parts[1]
    return None


def route_at(document: StoredDocument | None, name: str, generation: Any) -> dict[str, Any] | None:
    """The route as written at ``generation``, if the document is still that generation."""
    if document is None or document.generation != generation:
        return None
    route = document.route(name)
    return None if route is None else route.model_dump()


class Feed:
    """Follows the audit and rollout-event streams and hands each new entry's line to ``out``."""

    def __init__(self, redis: RedisClient, keys: Keys, out: Callable[[str], None] = print) -> None:
        self._redis = redis
        self._keys = keys
        self._out = out
        self._ids: dict[str, str] = {}
        self._failing = False

    async def run(self) -> None:
        """Until cancelled; Redis errors are logged once per outage and retried."""
        while True:
            try:
                if not self._ids:
                    self._ids = {key: await self._newest(key) for key in self._streams()}
                await self.read_once()
            except (RedisError, OSError, ValueError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # On Python 3.11 redis-py's own timeout can turn our cancellation into
                    # a TimeoutError (an OSError): honour the cancellation, do not retry.
                    raise asyncio.CancelledError from exc
                if not self._failing:
                    log.warning("demo feed: cannot read Redis (%s); retrying", exc)
                self._failing = True
                await asyncio.sleep(RETRY_S)
                continue
            if self._failing:
                log.info("demo feed: reading Redis again")
                self._failing = False

    def _streams(self) -> tuple[str, str]:
        return self._keys.audit, self._keys.events

    async def _newest(self, key: str) -> str:
        """The id of the stream's newest entry ("0-0" if none): the feed starts after it."""
        newest = entries(await self._redis.xrevrange(key, count=1))
        return newest[0][0] if newest else "0-0"

    async def read_once(self, block_ms: int = BLOCK_MS) -> int:
        """Wait up to ``block_ms`` for new entries and print them; how many were printed."""
        streams: dict[KeyT, StreamIdT] = {key: after for key, after in self._ids.items()}
        answer = await self._redis.xread(streams, count=100, block=block_ms)
        printed = 0
        for stream, found in stream_reads(answer):
            for entry_id, fields in found:
                self._ids[stream] = entry_id
                line = await self._line(stream, fields)
                if line is not None:
                    self._out(line)
                    printed += 1
        return printed

    async def _line(self, stream: str, fields: Mapping[str, str]) -> str | None:
        try:
            if stream == self._keys.events:
                return event_line(json.loads(fields["event"]))
            record = json.loads(fields["record"])
        except (KeyError, ValueError, TypeError):
            return None  # not an entry this feed understands: skip it
        name = needs_route(record)
        route = None
        if name is not None:
            route = route_at(await self._document(), name, record.get("generation"))
        return audit_line(record, route)

    async def _document(self) -> StoredDocument | None:
        raw = await self._redis.get(self._keys.document)
        try:
            return None if raw is None else StoredDocument.decode(raw)
        except ValueError:
            return None  # not a document this version reads: the line says superseded
