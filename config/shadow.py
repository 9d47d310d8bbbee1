"""Shadow traffic: the contract between the proxy that mirrors and the control plane that reads.

A route may mirror a sampled share of its POST requests to a shadow track (``Shadow``). The
user gets the primary's answer; the copy is sent once the primary's body is complete, read in
full in the background, never retried, and dropped (and counted) when over its limits. Each
mirrored request leaves a pair (``ShadowPair``): both answers' facts, and their text only when
the route stores it (``store_text``).

Redis:
- ``{ns}:shadow:pairs:<route>``  stream of pairs, one entry per mirrored request (field
  ``pair``: the pair's JSON), trimmed to ``max_pairs`` and to ``pairs_ttl``, the key itself
  expiring ``pairs_ttl`` after the last pair;
- ``{ns}:shadow:judged:<pair nonce>``  the verdict given on a pair (one per pair), kept 30
  days (the longest ``pairs_ttl``);
- metric windows: the shadow copies' counts under five-part fields
  ``<track>\\t<version>\\t<metric>\\t\\tshadow`` (``config.metrics.shadow_field_name``), which
  readers of live traffic skip.

A pair is judged through ``POST /v1/feedback`` on the admin API with its ``pair_id``: a
request id signed for the shadow's route, track and version with a fourth part, ``shadow``,
so that it never counts as feedback on a live answer (``config.feedback.verify_pair``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from config.base import Model, Name
from config.durations import Duration

PAIR_FIELD = "pair"
"""The field of a pairs-stream entry that holds the pair's JSON."""

CAPTURE_BYTES = 256 * 1024
"""Raw body bytes kept of each side of a pair (a stream's events included) for its text,
length and hash; an answer longer than this is marked ``text_truncated``."""

Verdict = Literal["better", "worse", "same"]
"""A judge's verdict on a pair: the shadow's answer against the primary's."""

VERDICT_FIELDS: dict[str, str] = {
    "better": "fb:shadow_better",
    "worse": "fb:shadow_worse",
    "same": "fb:shadow_same",
}
"""The window count each verdict adds, in the shadow track's shadow-mode fields."""


class Shadow(Model):
    """``shadow:`` of a route: mirror ``percent`` of its POST requests to ``track``."""

    track: Name
    percent: float = Field(ge=0, le=100)
    max_in_flight: int = Field(default=16, ge=1, le=10_000)
    """Copies in flight at once on one proxy process; a request over it is not mirrored."""
    max_tokens_per_minute: int | None = Field(default=None, ge=1)
    """Tokens (prompt + completion, as the shadow reports them) the copies of one proxy
    process may use in a minute; once reached, no copy is sent until the next minute."""
    timeout: Duration = 300.0
    """A copy's own deadline, from its start to its last byte; it may outlive the client's
    request, never this."""
    store_text: bool = False
    """Keep each answer's text (a prefix of ``text_bytes``) in the pairs; otherwise only
    lengths, hashes and finish reasons."""
    text_bytes: int = Field(default=4096, ge=0, le=65_536)
    max_pairs: int = Field(default=1000, ge=0, le=100_000)
    """Pairs kept per route in Redis (the oldest go first); 0 keeps none."""
    pairs_ttl: Duration = 86_400.0
    """How long a pair is kept."""

    @field_validator("percent")
    @classmethod
    def _steps(cls, value: float) -> float:
        if abs(value * 100 - round(value * 100)) > 1e-6:
            raise ValueError("at most two decimals (0.01 % steps)")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("greater than 0")
        return value

    @field_validator("pairs_ttl")
    @classmethod
    def _kept(cls, value: float) -> float:
        if not 60 <= value <= 30 * 86_400:
            raise ValueError("between 1 minute and 30 days")
        return value

    def threshold(self) -> int:
        """Buckets (of 10,000) that are mirrored."""
        return round(self.percent * 100)


class PairSide(Model):
    """One answer of a pair. Pairs are read back by control planes of other releases: a
    field this one does not know is ignored, not refused."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    track: str
    version: str
    status: int | None = None
    """The upstream's status; None when no answer came (see ``error``)."""
    error: str | None = None
    """The error class (``config.metrics.ERROR_CLASSES``, or ``client_gone``), if any."""
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    text_chars: int = 0
    """Characters of the answer's text (of the part read, when ``text_truncated``)."""
    text_sha256: str | None = None
    """SHA-256 of the answer's text, hex; None without text."""
    text_truncated: bool = False
    text: str | None = None
    """The text's first ``text_bytes`` (UTF-8), only when the route stores text."""


class ShadowPair(Model):
    """A mirrored request: the primary's answer and the shadow's, as stored and exported
    (unknown fields ignored, as ``PairSide``'s)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str
    """The id the client saw (``X-Request-Id``)."""
    pair_id: str
    """The id a verdict on this pair is sent with (``POST /v1/feedback``)."""
    route: str
    at: float
    """Unix time the request arrived."""
    stored_text: bool
    primary: PairSide
    shadow: PairSide
    id: str | None = None
    """The pair's position in the stream (set when read back)."""
