"""The Redis layout both planes share: key names and the stored document's encoding.

Keys that a Lua script touches together carry the same hash tag (``{splitgate}`` by
default), so the layout works on Redis Cluster as well as on a single server or Sentinel.

- ``{ns}:routing``             the routing document, JSON of ``StoredDocument``
- ``{ns}:routing:generation``  its generation alone, an integer that only grows (cheap to poll)
- ``{ns}:routing:changes``     pub/sub channel; each message is a new generation
- ``{ns}:audit``               stream of audit records (actor, before, after, reason, time)
- ``{ns}:ack:<instance>``      what a proxy replica has applied (generation and digest), with a TTL
- ``{ns}:events``              stream of rollout events (phase changes, approvals needed,
                               promotions, rollbacks): the outbox webhooks are delivered from
- ``{ns}:events:delivered``    the id of the last event delivered to the webhooks
- ``{ns}:rollout:<id>``        a rollout's record, JSON with a ``version`` (``control.rollout_store``)
- ``{ns}:rollout:<id>:verdicts`` stream of its looks' verdicts
- ``{ns}:rollout:active:<route>`` the id of the route's one active rollout
- ``{ns}:rollouts``             set: the index of rollouts the runner still steps
- ``{ns}:rollouts:archive``     sorted set: rollouts that are over, by the time they ended
- ``{ns}:rollouts:quarantine``  hash: id → why its record does not read (left out of the index)
- ``{ns}:flag-schedule:<flag>`` a feature flag's schedule progress, JSON with a ``version``
                               (steps applied, last result, analysis since the last step):
                               the guard of the schedule runner's document writes
- ``{ns}:decisions:<slot>``     hash: the routing decision log of one 5-minute slot (request
                               id nonce → decision JSON), expiring an hour after the slot
                               (``config.decisions``)
- ``{ns}:shadow:pairs:<route>`` stream: the route's shadow pairs, capped and expiring
                               (``config.shadow``)
- ``{ns}:shadow:judged:<nonce>`` the verdict given on one pair, kept 30 days (the longest
                               ``pairs_ttl``)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import ConfigDict, Field, PrivateAttr

from config.schema import Model, RoutingDocument

DEFAULT_NAMESPACE = "splitgate"


def digest(raw: str | bytes) -> str:
    """The identity of one stored write: a hash of the exact JSON value stored in Redis.

    Two writes of the same generation (one of them lost in a failover) differ in their
    digest, because the value carries who wrote it and when as well as the routing.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()[:32]


class StoredDocument(RoutingDocument):
    """The routing document as stored: with its generation and who wrote it when."""

    generation: int = Field(ge=1)
    written_at: float = 0.0
    written_by: str = ""
    _digest: str | None = PrivateAttr(default=None)

    def encode(self) -> str:
        return self.model_dump_json()

    @property
    def digest(self) -> str:
        """``digest`` of the value as read from Redis (or as this process will store it)."""
        return self._digest if self._digest is not None else digest(self.encode())

    @classmethod
    def decode(cls, raw: str | bytes) -> StoredDocument:
        """Parse a stored value; raises ``pydantic.ValidationError`` if it is not valid."""
        document = cls.model_validate_json(raw)
        document._digest = digest(raw)
        return document

    @classmethod
    def stamp(
        cls, document: RoutingDocument, generation: int, written_at: float, written_by: str
    ) -> StoredDocument:
        """``document`` as stored at ``generation`` (every field of the document kept)."""
        fields = {name: getattr(document, name) for name in RoutingDocument.model_fields}
        stored = cls(**fields, generation=generation, written_at=written_at, written_by=written_by)
        stored._digest = digest(stored.encode())
        return stored

    def routing(self) -> RoutingDocument:
        return RoutingDocument(
            **{name: getattr(self, name) for name in RoutingDocument.model_fields}
        )


class UpstreamHealth(Model):
    """One upstream as one proxy replica sees it (its passive health, ``proxy.endpoints``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ejected: bool = False
    """Left out of the balancing now (after too many failures in a row)."""
    failures: int = Field(default=0, ge=0)
    """Connect failures, gateway errors and first-byte timeouts in a row, since the last
    success or ejection."""
    ejections: int = Field(default=0, ge=0)
    """Times ejected since the replica started."""


MAX_ACKED_UPSTREAMS = 64
"""An ack reports at most this many upstreams (the ack stays small)."""


class Ack(Model):
    """What one proxy replica reports: the document it routes by, and since when.

    ``digest`` (``StoredDocument.digest``) tells two documents of the same generation apart;
    it is empty in the acks of proxies older than it, and of a proxy still on its file's
    routing. ``upstreams``: each upstream URL of its table and its passive health, written
    with the ack (no write of its own); empty from proxies older than it. Unknown fields are
    ignored, so a later field does not break an older reader.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    generation: int
    applied_at: float
    digest: str = ""
    upstreams: dict[str, UpstreamHealth] = Field(default_factory=dict)

    def routes_by(self, document: StoredDocument) -> bool:
        """Whether this replica applies exactly ``document`` (by generation alone without a
        digest)."""
        return self.generation == document.generation and (
            not self.digest or self.digest == document.digest
        )


@dataclass(frozen=True)
class Keys:
    namespace: str = DEFAULT_NAMESPACE

    @property
    def _tag(self) -> str:
        return "{" + self.namespace + "}"

    @property
    def document(self) -> str:
        return f"{self._tag}:routing"

    @property
    def generation(self) -> str:
        return f"{self._tag}:routing:generation"

    @property
    def changes(self) -> str:
        return f"{self._tag}:routing:changes"

    @property
    def audit(self) -> str:
        return f"{self._tag}:audit"

    @property
    def ack_pattern(self) -> str:
        return f"{self._tag}:ack:*"

    def metrics_window(self, route: str, start: int) -> str:
        return f"{self._tag}:metrics:{route}:{start}"

    def decisions(self, slot: int) -> str:
        """The logged routing decisions of the slot starting at ``slot`` (``config.decisions``)."""
        return f"{self._tag}:decisions:{slot}"

    def shadow_pairs(self, route: str) -> str:
        """The route's shadow pairs, one stream entry each (``config.shadow``)."""
        return f"{self._tag}:shadow:pairs:{route}"

    def shadow_judged(self, nonce: str) -> str:
        """The verdict given on the pair whose id has ``nonce`` (one per pair)."""
        return f"{self._tag}:shadow:judged:{nonce}"

    @property
    def epoch(self) -> str:
        """The fencing epoch: grows by one each time a control plane becomes the leader."""
        return f"{self._tag}:epoch"

    @property
    def leader(self) -> str:
        """The lease: ``<instance> <epoch>``, with a TTL, renewed by the leader."""
        return f"{self._tag}:leader"

    @property
    def rollouts(self) -> str:
        """The index of active rollouts: the runner reads these each pass."""
        return f"{self._tag}:rollouts"

    @property
    def rollouts_archive(self) -> str:
        """Rollouts that are over, scored by the time they ended; deleted after retention."""
        return f"{self._tag}:rollouts:archive"

    @property
    def rollouts_quarantine(self) -> str:
        """Rollouts whose record does not read: id → ``{"reason", "at"}``."""
        return f"{self._tag}:rollouts:quarantine"

    def rollout(self, rollout_id: str) -> str:
        return f"{self._tag}:rollout:{rollout_id}"

    def rollout_verdicts(self, rollout_id: str) -> str:
        """Stream of every look's verdicts with the figures they rest on."""
        return f"{self._tag}:rollout:{rollout_id}:verdicts"

    def active_rollout(self, route: str) -> str:
        return f"{self._tag}:rollout:active:{route}"

    @property
    def events(self) -> str:
        """Stream of rollout events, written with the record that caused them."""
        return f"{self._tag}:events"

    @property
    def events_delivered(self) -> str:
        """The stream id of the last event every webhook was offered."""
        return f"{self._tag}:events:delivered"

    def flag_schedule(self, flag: str) -> str:
        """The progress of ``flag``'s dated schedule (``control.schedule``)."""
        return f"{self._tag}:flag-schedule:{flag}"

    def ack(self, instance: str) -> str:
        return f"{self._tag}:ack:{instance}"

    def instance_of(self, ack_key: str) -> str:
        return ack_key.removeprefix(f"{self._tag}:ack:")
