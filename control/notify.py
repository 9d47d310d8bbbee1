"""Webhook notifications: rollout events from the ``{ns}:events`` stream, POSTed to receivers.

The stream is an outbox: the runner appends each event with the record that caused it, and
the leader's notifier offers every event, in stream order, to every URL, then moves the
cursor ``{ns}:events:delivered`` past it. Delivery is at least once: an event may be sent
again if the notifier stops (or loses the lead) between the POST and the cursor's update, so
each request carries the event's stream id in ``X-Splitgate-Delivery`` for receivers to
deduplicate. A URL that keeps failing is logged and skipped, never waited for: a dead
receiver must not hold back the others, nor the events after this one.

Bodies are signed like GitHub's: ``X-Splitgate-Signature: sha256=<hex HMAC of the body>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from redis.exceptions import RedisError

from config import jsonsafe
from config.keys import Keys
from config.redis_replies import entries, text
from control.redis_client import RedisClient

log = logging.getLogger("splitgate.control.notify")

SUMMARY_MAX = 300
"""Characters of an event's ``detail`` kept in the one-line summary."""

BATCH = 100
"""Events read from the stream at a time."""

_RETRIED_STATUSES = frozenset({429})


def parse_webhook_urls(text: str) -> list[str]:
    """The URLs of a comma- or whitespace-separated list (``SPLITGATE_WEBHOOKS``).

    Raises ``ValueError`` naming the first entry that is not an http(s) URL with a host.
    """
    urls = []
    for entry in re.split(r"[\s,]+", text.strip()):
        if not entry:
            continue
        try:
            parts = urlsplit(entry)
            _ = parts.port  # raises ValueError for a port out of range
        except ValueError:
            raise ValueError(f"not a valid URL: {entry!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {entry!r}")
        urls.append(entry)
    return urls


def summary(event: dict[str, Any]) -> str:
    """One line for chat receivers: ``splitgate: <rollout> (<strategy>, <version>) <kind>: …``."""
    name = event.get("rollout") or event.get("route") or "?"
    about = ", ".join(str(event[k]) for k in ("strategy", "version") if event.get(k))
    line = f"splitgate: {name}" + (f" ({about})" if about else "") + f" {event.get('kind', '?')}"
    detail = " ".join(str(event.get("detail") or "").split())
    if len(detail) > SUMMARY_MAX:
        detail = detail[: SUMMARY_MAX - 1] + "…"
    return f"{line}: {detail}" if detail else line


def redact(url: str) -> str:
    """``url`` fit for a log: chat webhooks carry their secret token in the path."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # no user:password either
    return origin + ("/…" if parts.path.strip("/") or parts.query else "")


class Notifier:
    """Delivers the events stream to webhook URLs; see the module's docstring for the contract."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        urls: Sequence[str],
        secret: bytes = b"",
        *,
        attempts: int = 4,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self._redis = redis
        self._keys = keys
        self._urls = list(urls)
        self._secret = secret
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._session_factory = session_factory or self._default_session
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _default_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def start_from_now(self) -> None:
        """Set the cursor to the newest event if it was never set, so webhooks turned on later
        are not sent every event stored before them."""
        last = entries(await self._redis.xrevrange(self._keys.events, count=1))
        await self._redis.set(self._keys.events_delivered, last[0][0] if last else "0", nx=True)

    async def run(self, is_leader: Callable[[], bool], interval_s: float = 1.0) -> None:
        """Deliver while this process leads, until cancelled; a Redis outage is waited out."""
        outage = False
        while True:
            if is_leader():
                try:
                    # A full batch means more may be waiting: go on without sleeping.
                    while await self.deliver_pending(BATCH, is_leader) == BATCH and is_leader():
                        pass
                except (RedisError, OSError) as exc:
                    if not outage:
                        log.warning("webhooks paused, Redis unavailable: %s", exc)
                    outage = True
                else:
                    if outage:
                        log.info("webhooks resumed, Redis is back")
                    outage = False
            _honour_cancellation()
            await asyncio.sleep(interval_s)

    async def deliver_pending(
        self, limit: int = BATCH, is_leader: Callable[[], bool] = lambda: True
    ) -> int:
        """Offer the events after the cursor to every URL, in order; returns how many.

        Stops between events once ``is_leader`` says this process no longer leads, so a
        deposed leader does not go on sending beside its successor. Receivers' failures are
        logged, never raised; Redis errors are raised, and so is ``CancelledError`` when this
        task has a cancellation pending.
        """
        cursor = text(await self._redis.get(self._keys.events_delivered)) or "0"
        pending = entries(
            await self._redis.xrange(self._keys.events, min=f"({cursor}", max="+", count=limit)
        )
        done = 0
        for entry_id, fields in pending:
            _honour_cancellation()
            if not is_leader():
                break
            event = _decode(entry_id, fields)
            if event is not None:
                await self._deliver(entry_id, event)
            await self._redis.set(self._keys.events_delivered, entry_id)
            done += 1
        return done

    async def _deliver(self, entry_id: str, event: dict[str, Any]) -> None:
        body = jsonsafe.dumps({**event, "text": summary(event)}).encode()
        kind = str(event.get("kind", ""))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "splitgate-webhook",
            # A header value cannot hold just anything (CR, LF, non-Latin-1): keep it a token.
            "X-Splitgate-Event": re.sub(r"[^\w.-]", "_", kind, flags=re.ASCII),
            "X-Splitgate-Delivery": entry_id,
        }
        if self._secret:
            digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
            headers["X-Splitgate-Signature"] = f"sha256={digest}"
        if self._session is None:
            self._session = self._session_factory()
        session = self._session
        results = await asyncio.gather(
            *(self._post(session, url, body, headers) for url in self._urls)
        )
        for index, (url, failure) in enumerate(zip(self._urls, results, strict=True)):
            if failure is not None:
                log.warning(
                    "webhook %s (#%d) skipped event %s of rollout %s (%s): %s",
                    redact(url),
                    index + 1,
                    kind,
                    event.get("rollout"),
                    entry_id,
                    failure,
                )

    async def _post(
        self, session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
    ) -> str | None:
        """POST with retries; None once a 2xx came back, else why the last attempt failed."""
        failure = ""
        for attempt in range(self._attempts):
            if attempt:
                await self._sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                async with session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if 200 <= response.status < 300:
                        return None
                    # Some of the answer helps: Slack says e.g. "invalid_payload".
                    said = (await response.content.read(200)).decode(errors="replace").strip()
                    failure = f"status {response.status}" + (f" {said!r}" if said else "")
                    if response.status < 500 and response.status not in _RETRIED_STATUSES:
                        return failure
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failure = f"no answer: {str(exc) or type(exc).__name__}"
        return f"{failure} (after {self._attempts} attempts)"


def _honour_cancellation() -> None:
    """Raise ``CancelledError`` if this task was cancelled, even if the cancellation was lost.

    On Python 3.11, ``asyncio.wait_for`` (redis-py sends every command through it) returns
    normally when the cancellation arrives as the command completes, so a loop would run on
    after ``cancel()``. The task still counts the request, which is what is checked here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _decode(entry_id: str, fields: dict[str, str]) -> dict[str, Any] | None:
    try:
        event = json.loads(fields["event"])
    except (KeyError, ValueError):
        event = None
    if not isinstance(event, dict):
        log.warning("events stream entry %s is not an event, skipped: %.200r", entry_id, fields)
        return None
    return event
