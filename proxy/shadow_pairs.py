"""Shadow pairs, built and written in the background by the metrics flusher's loop.

The mirror (``proxy.shadow``) hands over each mirrored request once both answers are in,
with the first bytes of each body. Here, off the request path, each answer's text is read
out of its body (a JSON answer, or a stream's events: chat completions, completions and the
Responses API), measured and hashed, and kept only when the route stores text; then every
pair of one flush goes to Redis in one pipeline: ``XADD`` to the route's stream, trimmed to
``max_pairs`` (approximately, as Redis trims by whole nodes) and to ``pairs_ttl``, and the
key's expiry renewed. A flush that fails drops its pairs (they are samples) and counts them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from config.keys import Keys
from config.shadow import PAIR_FIELD, PairSide, ShadowPair
from proxy.redis_client import RedisClient
from proxy.shadow import Mirror, Side, Ticket

log = logging.getLogger("splitgate.proxy.shadow")

MAX_PER_FLUSH = 1000
"""Pairs built and written in one flush at most; the rest wait for the next."""


def answer_text(body: bytes, sse: bool) -> tuple[str, str | None]:
    """The answer's text and finish reason, from a JSON body or a stream's events."""
    if not body:
        return "", None
    if not sse:
        try:
            data = json.loads(body)
        except ValueError:
            return "", None
        return _whole_text(data)
    fast = _stream_text(body)
    if fast is not None:
        return fast
    parts: list[str] = []
    finish: str | None = None
    for event in _events(body):
        text, reason = _event_text(event)
        if text:
            parts.append(text)
        if reason is not None:
            finish = reason
    return "".join(parts), finish


_STRING = rb'("[^"\\\n]*(?:\\.[^"\\\n]*)*")'
"""A JSON string literal, unrolled (no alternation per character)."""
_CHAT_DELTA = re.compile(rb'"content"\s*:\s*' + _STRING)
_RESPONSE_DELTA = re.compile(rb'"delta"\s*:\s*' + _STRING)
_TEXT = re.compile(rb'"text"\s*:\s*' + _STRING)
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"([^"\\]{1,64})"')
_STATUS = re.compile(rb'"type"\s*:\s*"response\.(?:completed|incomplete)"')
_TAIL = 4096
"""A stream's finish reason is in its last events."""


def _stream_text(body: bytes) -> tuple[str, str | None] | None:
    """A stream's text from its events' string literals, decoded in one ``json.loads``: a
    stream of a few hundred events costs one scan, not a parse per event. Chat chunks carry
    it in ``delta.content`` (the only ``content`` of a chunk), the Responses API in string
    ``delta``s (a chat chunk's ``delta`` is an object), completions in ``text``. None when
    no event has one of these shapes (the caller then parses event by event)."""
    for pattern in (_CHAT_DELTA, _RESPONSE_DELTA, _TEXT):
        found = pattern.findall(body)
        if not found:
            continue
        try:
            parts = json.loads(b"[" + b",".join(found) + b"]")
        except ValueError:
            return None
        reasons = _FINISH.findall(body, max(0, len(body) - _TAIL))
        finish = reasons[-1].decode() if reasons else None
        if finish is None and pattern is _RESPONSE_DELTA and _STATUS.search(body):
            return None  # the Responses API's end: read from its last event, parsed
        return "".join(parts), finish
    return None


def _events(body: bytes) -> Iterator[Any]:
    for line in body.split(b"\n"):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            yield json.loads(payload)
        except ValueError:
            continue  # an event cut by the capture's end


def _choice(data: dict[str, Any], part: str) -> tuple[str, str | None] | None:
    """The first choice's text (in its ``part``: ``message`` whole, ``delta`` in a stream, or
    ``text`` for completions) and finish reason; None without choices."""
    choices = data.get("choices")
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
        return None
    choice = choices[0]
    holder = choice.get(part)
    text = _content(holder.get("content")) if isinstance(holder, dict) else ""
    if not text and isinstance(choice.get("text"), str):
        text = choice["text"]
    return text, _reason(choice.get("finish_reason"))


def _whole_text(data: Any) -> tuple[str, str | None]:
    if not isinstance(data, dict):
        return "", None
    found = _choice(data, "message")
    if found is not None:
        return found
    if data.get("object") == "response":  # the Responses API
        return _response_text(data), _response_finish(data)
    return "", None


def _response_text(data: dict[str, Any]) -> str:
    if isinstance(data.get("output_text"), str):
        return str(data["output_text"])
    parts = []
    for item in data.get("output") or ():
        if isinstance(item, dict):
            for content in item.get("content") or ():
                if isinstance(content, dict) and content.get("type") == "output_text":
                    parts.append(str(content.get("text", "")))
    return "".join(parts)


def _response_finish(data: dict[str, Any]) -> str | None:
    details = data.get("incomplete_details")
    if isinstance(details, dict) and isinstance(details.get("reason"), str):
        return str(details["reason"])
    return _reason(data.get("status"))


def _event_text(event: Any) -> tuple[str, str | None]:
    if not isinstance(event, dict):
        return "", None
    found = _choice(event, "delta")
    if found is not None:
        return found
    kind = event.get("type")
    if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
        return str(event["delta"]), None
    if kind in ("response.completed", "response.incomplete") and isinstance(
        event.get("response"), dict
    ):
        return "", _response_finish(event["response"])
    return "", None


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _reason(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def pair_side(side: Side, store_text: bool, text_bytes: int) -> PairSide:
    body = b"".join(side.body)
    text, finish = answer_text(body, side.sse)
    kept = None
    if store_text:
        kept = text.encode()[:text_bytes].decode("utf-8", "ignore")
    return PairSide(
        track=side.track,
        version=side.version,
        status=side.status,
        error=side.error,
        latency_ms=None if side.latency_ms is None else round(side.latency_ms, 3),
        ttfb_ms=None if side.ttfb_ms is None else round(side.ttfb_ms, 3),
        prompt_tokens=side.prompt,
        completion_tokens=side.completion,
        finish_reason=finish,
        text_chars=len(text),
        text_sha256=hashlib.sha256(text.encode()).hexdigest() if text else None,
        text_truncated=side.truncated,
        text=kept,
    )


def build(ticket: Ticket) -> ShadowPair:
    settings = ticket.route.settings
    return ShadowPair(
        request_id=ticket.request_id,
        pair_id=ticket.pair_id,
        route=ticket.route.route,
        at=round(ticket.at, 3),
        stored_text=settings.store_text,
        primary=pair_side(ticket.primary, settings.store_text, settings.text_bytes),
        shadow=pair_side(ticket.shadow, settings.store_text, settings.text_bytes),
    )


class PairWriter:
    """Writes the mirror's ready pairs to Redis, once a flush (``proxy.flusher``)."""

    def __init__(self, redis: RedisClient, keys: Keys, mirror: Mirror) -> None:
        self._redis = redis
        self._keys = keys
        self._mirror = mirror
        self.written = 0

    async def flush(self) -> None:
        ready = self._mirror.ready
        if not ready:
            return
        batch = self._mirror.take_ready(MAX_PER_FLUSH)
        routes: dict[str, tuple[int, float]] = {}
        entries: list[tuple[str, str]] = []
        for ticket in batch:
            await asyncio.sleep(0)  # requests go first: one pair at a time holds the loop
            try:
                pair = build(ticket)
            except Exception:  # one odd answer must not cost the batch
                log.exception("shadow pair of %s not built", ticket.request_id)
                self._mirror.gate(ticket.route.route).dropped["pairs"] += 1
                continue
            settings = ticket.route.settings
            routes[pair.route] = (settings.max_pairs, settings.pairs_ttl)
            entries.append((pair.route, pair.model_dump_json(exclude={"id"})))
        try:
            await self._send(entries, routes)
        except Exception:
            for route, _ in entries:
                self._mirror.gate(route).dropped["pairs"] += 1
            raise
        self.written += len(entries)

    async def _send(
        self, entries: list[tuple[str, str]], routes: dict[str, tuple[int, float]]
    ) -> None:
        if not entries:
            return
        keys = self._keys
        now_ms = int(time.time() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for route, data in entries:
            cap = routes[route][0]
            pipe.xadd(keys.shadow_pairs(route), {PAIR_FIELD: data}, maxlen=cap, approximate=True)
        for route, (_, ttl) in routes.items():
            key = keys.shadow_pairs(route)
            pipe.xtrim(key, minid=str(now_ms - int(ttl * 1000)), approximate=True)
            pipe.expire(key, int(ttl))
        await pipe.execute()
