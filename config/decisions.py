"""The routing decision log: what a proxy keeps of a routing decision, and for how long.

A signed request id already proves the route, track and version that answered
(``config.feedback``). For a bounded share of requests each proxy process also keeps the rest
of the decision (``Decision``): the bucket, the rule that chose the track, the routing
generation and the time. The proxy buffers them in memory and its flusher writes them in
batches, so serving a request never waits on Redis. ``GET /v1/requests/{id}`` on the admin
API reads them back.

Layout: one hash per ``SLOT_S`` slot of decision time (``Keys.decisions``), field → the
decision's JSON, where the field is the id's nonce (its first part), or ``client_field`` of a
client's own ``X-Request-Id``. Each hash expires ``RETENTION_S`` after its slot ends, so an
entry lives at least ``RETENTION_S`` and at most ``RETENTION_S + SLOT_S``; a lookup asks
every slot that may still exist, in one round trip.

Nothing a user sent is kept: no sticky key, user id, header or body; a client's own request
id only as a hash.
"""

from __future__ import annotations

import hashlib

from pydantic import Field

from config.base import Model, Percentage

SLOT_S = 300
"""Decisions of one slot of time share one hash."""
RETENTION_S = 3600
"""An entry can be looked up for at least this long after its decision."""

RULES = ("weights", "override", "flag:<name>")
"""What chose the track: the weighted split, the trusted override header, or a feature flag.
A request the route also mirrored says where its copy went (``Decision.shadow``)."""


class DecisionLogSettings(Model):
    """``proxy.decision_log``: which routing decisions a proxy process keeps for lookup.

    Bounded twice: at most ``max_per_second`` entries a second per process (the flusher's
    interval), and each for ``RETENTION_S`` to ``RETENTION_S + SLOT_S``. Entries over the cap
    are dropped and counted, never waited for.
    """

    enabled: bool = True
    """Off: nothing is kept (a proxy serving its file alone keeps nothing either)."""
    sample_percent: Percentage = 1.0
    """The share of all decisions kept (every n-th one, not at random)."""
    keep_unusual: bool = True
    """Also keep every decision that is not the plain weighted split (a feature flag, the
    override, a fallback to the baseline, a request mirrored to a shadow) and every request
    that failed: what someone who complains about one answer most likely hit."""
    max_per_second: int = Field(default=50, ge=1, le=10_000)
    """Per process; the worst case held in Redis is about this × ``RETENTION_S`` × 200 bytes
    per process (about 40 MB at the default)."""


class ShadowCopy(Model):
    """The copy of a mirrored request: the shadow track and version it went to, and the id
    its pair is judged by."""

    track: str
    version: str
    pair_id: str


class Decision(Model):
    """One logged routing decision, as stored (JSON) and answered."""

    route: str
    track: str
    """The track that answered (the baseline's, after a fallback)."""
    version: str
    chosen: str
    """The track the rule chose."""
    rule: str
    """One of ``RULES``."""
    bucket: int | None = Field(default=None, ge=0)
    """The request's bucket under the rule: the route's hash for ``weights``, the flag's own
    for a flag; None for the override, or without a sticky key (the bucket was drawn at
    random)."""
    generation: int = Field(ge=0)
    """The routing document's generation the decision was made by (0: the file)."""
    at: float
    """Unix time of the decision (when the request arrived)."""
    error: str | None = None
    """The request's error class (``config.metrics.ERROR_CLASSES``, or ``client_gone``)."""
    shadow: ShadowCopy | None = None
    """The route mirrored this request: where its copy went (``config.shadow``)."""


def slot_start(at: float) -> int:
    return int(at // SLOT_S) * SLOT_S


def slot_ttl(start: int, now: float) -> int:
    """Seconds the slot's hash must still live: until ``RETENTION_S`` after the slot ends."""
    return max(1, int(start + SLOT_S + RETENTION_S - now) + 1)


def lookup_slots(now: float) -> list[int]:
    """Every slot whose hash may still hold entries, newest first."""
    newest = slot_start(now)
    oldest = slot_start(now - RETENTION_S - SLOT_S)
    return list(range(newest, oldest - 1, -SLOT_S))


def nonce_of(request_id: str) -> str:
    """The field of a signed id: its nonce, the same whichever track the id is signed for."""
    return request_id.partition(".")[0]


def client_field(client_id: str) -> str:
    """The field of a client's own ``X-Request-Id``: a hash, so the id itself is not kept."""
    return "c:" + hashlib.sha256(client_id.encode()).hexdigest()[:32]
