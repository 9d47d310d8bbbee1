"""Feedback on an answer, attributed to the track and version that gave it, with no lookup.

The proxy stamps each response's request id with a signature over the route, track and
version that answered (``<nonce>.<payload>.<tag>``, HMAC-SHA256 with the shared
``SPLITGATE_SIGNING_KEY``). Whoever receives feedback for that id (the proxy's public
endpoint, the control plane's admin API) verifies the tag and knows where to count it, so
serving a request never costs a Redis write. A forged or unknown id fails verification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal, NamedTuple

from pydantic import Field, model_validator

from config.schema import Model

_SEP = "\x1f"


def track_payload(route: str, track: str, version: str) -> str:
    """The id's middle part for one route/track/version; computed once per routing table."""
    return _payload(route, track, version)


def _payload(*fields: str) -> str:
    raw = _SEP.join(fields).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


PAIR_MARK = "shadow"
"""The fourth part of a shadow pair's payload: its id verifies only as a pair's."""


def pair_payload(route: str, track: str, version: str, issued: int) -> str:
    """The id's middle part of a shadow pair, for the shadow's route/track/version, with the
    Unix time it was issued (a verdict on a pair too old to be remembered is refused)."""
    return _payload(route, track, version, PAIR_MARK, str(issued))


def sign(key: bytes, nonce: str, payload: str) -> str:
    body = f"{nonce}.{payload}"
    tag = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:24]
    return f"{body}.{tag}"


class Signer:
    """``sign`` for one key, with the key's HMAC state prepared once: the same ids, cheaper."""

    __slots__ = ("_mac",)

    def __init__(self, key: bytes) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def __call__(self, nonce: str, payload: str) -> str:
        body = f"{nonce}.{payload}"
        mac = self._mac.copy()
        mac.update(body.encode())
        return f"{body}.{mac.hexdigest()[:24]}"


def verify(key: bytes, request_id: str) -> tuple[str, str, str] | None:
    """(route, track, version) of a genuine id; None for anything else (a pair's id too)."""
    fields = _verified(key, request_id)
    if fields is None or len(fields) != 3:
        return None
    return fields[0], fields[1], fields[2]


class PairId(NamedTuple):
    route: str
    track: str
    version: str
    nonce: str
    issued: int
    """Unix time the pair's id was signed."""


def verify_pair(key: bytes, pair_id: str) -> PairId | None:
    """What a genuine shadow pair id says; None for anything else (a live answer's id too)."""
    fields = _verified(key, pair_id)
    if fields is None or len(fields) != 5 or fields[3] != PAIR_MARK or not fields[4].isdigit():
        return None
    return PairId(fields[0], fields[1], fields[2], pair_id.split(".", 1)[0], int(fields[4]))


def _verified(key: bytes, request_id: str) -> list[str] | None:
    parts = request_id.split(".")
    if len(parts) != 3:
        return None
    nonce, payload, tag = parts
    expected = hmac.new(key, f"{nonce}.{payload}".encode(), hashlib.sha256).hexdigest()[:24]
    if not hmac.compare_digest(expected, tag):
        return None
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split(_SEP)
    except (ValueError, UnicodeDecodeError):
        return None


class Feedback(Model):
    """``POST /v1/feedback``: any subset of the signals, for one answered request."""

    request_id: str = Field(min_length=1, max_length=512)
    hallucination: bool | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = Field(default=None, max_length=4000)
    shadow_verdict: Literal["better", "worse", "same"] | None = None
    """A judge's verdict on a shadow pair (``request_id`` is then the pair's ``pair_id``):
    the shadow's answer against the primary's (``config.shadow``)."""

    @model_validator(mode="after")
    def _something(self) -> Feedback:
        signals = (self.hallucination, self.rating, self.comment)
        if self.shadow_verdict is not None:
            if any(s is not None for s in signals):
                raise ValueError(
                    "a shadow_verdict judges a pair: send hallucination, rating or comment "
                    "on a live answer's id apart"
                )
            return self
        if all(s is None for s in signals):
            raise ValueError(
                "give at least one of hallucination, rating, comment or shadow_verdict"
            )
        return self


BAD_RATING = 2
"""Ratings at or below this count as bad: the event the bad-ratings comparison counts."""


def feedback_fields(feedback: Feedback) -> dict[str, int]:
    """The window counts one piece of feedback adds (see ``config.metrics``)."""
    out: dict[str, int] = {}
    if feedback.hallucination is not None:
        out["fb:hallucination_yes" if feedback.hallucination else "fb:hallucination_no"] = 1
    if feedback.rating is not None:
        out["fb:rating_sum"] = feedback.rating
        out["fb:rating_sq"] = feedback.rating * feedback.rating
        out["fb:rating_n"] = 1
        if feedback.rating <= BAD_RATING:
            out["fb:rating_bad"] = 1
    if feedback.comment:
        out["fb:comments"] = 1
    return out
