"""Document edits as pure functions: the new document, or the field and reason of the refusal."""

from __future__ import annotations

import pytest

from config.schema import RoutingDocument
from control import edits
from control.edits import EditError

DOC = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "tracks": [
                    {"name": "stable", "version": "1", "upstreams": ["http://a:1"], "weight": 90},
                    {"name": "canary", "version": "2", "upstreams": ["http://b:1"], "weight": 10},
                ],
            }
        ]
    }
)


def test_set_weights_returns_a_new_document_and_leaves_the_old_one() -> None:
    new = edits.set_weights(DOC, "chat", {"stable": 75.5, "canary": 24.5})
    assert [t.weight for t in new.routes[0].tracks] == [75.5, 24.5]
    assert [t.weight for t in DOC.routes[0].tracks] == [90, 10]


def test_every_bad_weight_is_reported_at_once() -> None:
    with pytest.raises(EditError) as caught:
        edits.set_weights(DOC, "chat", {"stable": -1, "canary": 101, "blue": 0})
    assert [e.field for e in caught.value.errors] == [
        "weights.stable",
        "weights.canary",
        "weights.blue",
    ]
    assert caught.value.status == 422


def test_replacing_a_track_keeps_its_position() -> None:
    new = edits.put_track(
        DOC, "chat", "stable", {"version": "1.1", "upstreams": ["http://c:1"], "weight": 90}
    )
    assert [(t.name, t.version) for t in new.routes[0].tracks] == [
        ("stable", "1.1"),
        ("canary", "2"),
    ]


def test_body_name_must_match_the_path() -> None:
    with pytest.raises(EditError) as caught:
        edits.put_track(
            DOC,
            "chat",
            "blue",
            {"name": "green", "version": "3", "upstreams": ["http://c:1"], "weight": 0},
        )
    assert caught.value.errors[0].field == "track.name"


def test_unknown_route_is_404() -> None:
    with pytest.raises(EditError) as caught:
        edits.delete_track(DOC, "nope", "canary")
    assert caught.value.status == 404
