"""Signed request ids: attribution without a lookup, and forgeries refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.feedback import Feedback, Signer, feedback_fields, sign, track_payload, verify

KEY = b"k" * 32


def test_signed_id_carries_route_track_and_version() -> None:
    rid = sign(KEY, "abc123", track_payload("chat", "canary", "v1.1.0"))
    assert verify(KEY, rid) == ("chat", "canary", "v1.1.0")


def test_the_prepared_signer_signs_as_sign_does() -> None:
    signer = Signer(KEY)
    payload = track_payload("chat", "canary", "v1.1.0")
    for nonce in ("abc123", "f00d0000000001", "x" * 40):
        assert signer(nonce, payload) == sign(KEY, nonce, payload)
    assert Signer(b"other" * 8)("abc123", payload) != sign(KEY, "abc123", payload)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda rid: rid[:-1] + ("0" if rid[-1] != "0" else "1"),  # tag
        lambda rid: rid.replace(".", ".x", 1),  # payload
        lambda rid: "other" + rid,  # nonce
        lambda rid: rid.rsplit(".", 1)[0],  # no tag
        lambda rid: "not-an-id",
    ],
)
def test_tampered_ids_are_refused(mangle: object) -> None:
    rid = sign(KEY, "abc123", track_payload("chat", "stable", "v1"))
    assert callable(mangle)
    assert verify(KEY, mangle(rid)) is None
    assert verify(b"another-key", rid) is None


def test_feedback_fields() -> None:
    fb = Feedback(request_id="x", hallucination=True, rating=4, comment="ok")
    assert feedback_fields(fb) == {
        "fb:hallucination_yes": 1,
        "fb:rating_sum": 4,
        "fb:rating_sq": 16,
        "fb:rating_n": 1,
        "fb:comments": 1,
    }
    # A rating of 1 or 2 is also counted as a bad rating (the bad-ratings comparison's event).
    bad = feedback_fields(Feedback(request_id="x", rating=2))
    assert bad == {"fb:rating_sum": 2, "fb:rating_sq": 4, "fb:rating_n": 1, "fb:rating_bad": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"request_id": "x"},
        {"request_id": "x", "rating": 6},
        {"request_id": "x", "rating": 0},
        {"request_id": "", "rating": 3},
        {"request_id": "x", "hallucination": "maybe"},
        {"request_id": "x", "rating": 3, "score": 1},
    ],
)
def test_bad_feedback_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Feedback.model_validate(body)
