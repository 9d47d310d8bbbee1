"""Reads the shadow pairs the proxies keep, and records the one verdict each pair may get
(``config.shadow``)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from pydantic import ValidationError

from config.keys import Keys
from config.metrics import WINDOW_TTL_S, window_start
from config.redis_replies import entries
from config.shadow import PAIR_FIELD, ShadowPair, Verdict
from control.redis_client import RedisClient

log = logging.getLogger("splitgate.control.shadow")

STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
"""A stream entry's id, as listed: ``<ms>-<seq>``, each part at most 2⁶⁴ - 1."""
_MAX_PART = 2**64 - 1

JUDGED_TTL_S = 30 * 86_400
"""How long a verdict is remembered: the longest a pair may be kept (``pairs_ttl``), so a
pair can never be judged a second time while its id is still listed."""

_JUDGE = """
local given = redis.call('GET', KEYS[1])
if given then return given end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
"""The verdict and its count together: a verdict is remembered only once it counted (the
count comes first: if the window cannot take it, nothing is remembered), and a second one
finds the first."""


@dataclass(frozen=True)
class Page:
    """Pairs of one route, newest first."""

    pairs: tuple[ShadowPair, ...]
    unreadable: int
    """Entries in the page's span whose pair does not parse (skipped)."""
    next: str | None
    """The ``before`` of the next (older) page; None when this page reaches the oldest."""


class ShadowPairs:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._judge = redis.register_script(_JUDGE)

    async def page(self, route: str, limit: int, before: str | None = None) -> Page:
        """The ``limit`` newest entries older than ``before`` (a ``valid_id``; all of them
        without it), read in one round trip; an entry that does not parse counts in
        ``unreadable``."""
        if before is not None and _parts(before) == (0, 0):
            return Page((), 0, None)  # nothing is older than 0-0 (and Redis refuses "(0-0")
        newest = "+" if before is None else f"({before}"
        reply = await self._redis.xrevrange(
            self._keys.shadow_pairs(route), max=newest, min="-", count=limit + 1
        )
        found = entries(reply)
        span = found[:limit]
        pairs: list[ShadowPair] = []
        for entry_id, fields in span:
            pair = _parse(entry_id, fields)
            if pair is not None:
                pairs.append(pair)
        more = len(found) > limit
        return Page(tuple(pairs), len(span) - len(pairs), span[-1][0] if more else None)

    async def judge(self, nonce: str, verdict: Verdict, route: str, field: str) -> str | None:
        """Record ``verdict`` as the pair's and add one to ``field`` of the route's current
        window, in one script, unless the pair has a verdict: None when counted now, else
        the verdict recorded before (nothing changed)."""
        window = self._keys.metrics_window(route, window_start(time.time()))
        given = await self._judge(
            keys=[self._keys.shadow_judged(nonce), window],
            args=[verdict, JUDGED_TTL_S, field, WINDOW_TTL_S],
        )
        return None if given is None else str(given)


def valid_id(text: str) -> bool:
    """``text`` is a stream entry's id Redis takes."""
    return bool(STREAM_ID.match(text)) and max(_parts(text)) <= _MAX_PART


def _parts(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def _parse(entry_id: str, fields: dict[str, str]) -> ShadowPair | None:
    raw = fields.get(PAIR_FIELD)
    if raw is None:
        log.warning("shadow pair %s has no %r field; skipped", entry_id, PAIR_FIELD)
        return None
    try:
        pair = ShadowPair.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "pair"
        log.warning("shadow pair %s does not read (%s: %s); skipped", entry_id, where, first["msg"])
        return None
    return pair.model_copy(update={"id": entry_id})
