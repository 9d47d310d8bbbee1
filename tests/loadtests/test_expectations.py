"""Expected weights: parsing, and which epoch expects what."""

from __future__ import annotations

import pytest

from loadtests.expectations import WeightBook, parse_weights, route_weights
from loadtests.tally import Epoch


@pytest.mark.parametrize(
    ("text", "weights"),
    [
        ("stable=90,canary=10", {"stable": 90, "canary": 10}),
        (" stable = 99.5 , canary=0.5 ", {"stable": 99.5, "canary": 0.5}),
        ("blue=100", {"blue": 100}),
        ("stable=100,canary=0", {"stable": 100, "canary": 0}),
    ],
)
def test_parse_weights(text: str, weights: dict[str, float]) -> None:
    assert parse_weights(text) == weights


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stable=90,canary=20", "add up to 100 (got 110)"),
        ("stable=90;canary=10", "is not a number"),
        ("stable", "expected TRACK=PERCENT"),
        ("=100", "expected TRACK=PERCENT"),
        ("stable=50,stable=50", "named twice"),
        ("stable=110,canary=-10", "from 0 to 100"),
        ("stable=abc", "'abc' is not a number"),
    ],
)
def test_parse_weights_refuses(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_weights(text)


def test_route_weights_from_the_admin_api() -> None:
    route = {
        "name": "chat",
        "tracks": [{"name": "stable", "weight": 75}, {"name": "canary", "weight": 25}],
    }
    assert route_weights(route) == {"stable": 75.0, "canary": 25.0}
    with pytest.raises(ValueError):
        route_weights({"name": "chat"})


def test_fixed_expectation_holds_for_every_epoch() -> None:
    book = WeightBook({"stable": 90, "canary": 10})
    assert book.known
    assert book.expected(Epoch("generation", 7)) == {"stable": 90, "canary": 10}
    assert book.epoch(None) == Epoch("weights", 0)
    assert book.expected(Epoch("weights", 0)) == {"stable": 90, "canary": 10}


def test_snapshots_by_generation_and_by_change() -> None:
    book = WeightBook()
    assert not book.known
    assert book.expected(Epoch("generation", 1)) is None
    book.note(1, {"stable": 90, "canary": 10})
    book.note(2, {"stable": 90, "canary": 10})  # e.g. an upstream added: same weights
    assert book.epoch(None) == Epoch("weights", 0)
    book.note(3, {"stable": 75, "canary": 25})
    assert book.epoch("3") == Epoch("generation", 3)
    assert book.epoch(None) == Epoch("weights", 1)
    assert book.epoch("garbage") == Epoch("weights", 1)
    assert book.expected(Epoch("generation", 2)) == {"stable": 90, "canary": 10}
    assert book.expected(Epoch("generation", 3)) == {"stable": 75, "canary": 25}
    assert book.expected(Epoch("generation", 4)) is None  # never seen: not judged
    assert book.expected(Epoch("weights", 1)) == {"stable": 75, "canary": 25}
