"""Per-track tallies, percentiles and stickiness sightings."""

from __future__ import annotations

import pytest

from loadtests.tally import NO_TRACK, Epoch, Histogram, Outcome, Tally, Violation

G1 = Epoch("generation", 1)
G2 = Epoch("generation", 2)


def turn(
    user: str = "u1",
    track: str | None = "stable",
    epoch: Epoch = G1,
    *,
    phase: str = "p",
    latency: float = 100.0,
    ttft: float | None = None,
    error: str | None = None,
) -> Outcome:
    return Outcome(user, track, epoch, phase, ttft is not None, latency, ttft, error)


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [
        ([], 0.5, None),
        ([5], 0.99, 5),
        ([1, 2, 3, 4], 0.5, 2),
        ([1, 2, 3, 4], 0.75, 3),
        ([1, 2, 3, 4], 1.0, 4),
        ([10] * 99 + [5000], 0.99, 10),
        ([10] * 98 + [5000] * 2, 0.99, 5000),
        ([123.4], 0.5, 120),  # two significant digits above 100 ms
        ([9876], 0.5, 9900),
        ([-3], 0.5, 0),
    ],
)
def test_percentiles(samples: list[float], q: float, expected: int | None) -> None:
    histogram = Histogram()
    for ms in samples:
        histogram.add(ms)
    assert histogram.percentile(q) == expected


def test_tracks_phases_and_failures_are_summed_apart() -> None:
    tally = Tally()
    tally.record(turn("u1", "stable", phase="before", latency=100, ttft=20))
    tally.record(turn("u2", "canary", phase="before", latency=300))
    tally.record(turn("u3", "canary", phase="phase 1", error="HTTP 500"))
    tally.record(turn("u4", None, phase="phase 1", error="connect"))

    assert {t: s.requests for t, s in tally.tracks.items()} == {
        "stable": 1,
        "canary": 2,
        NO_TRACK: 1,
    }
    canary = tally.tracks["canary"]
    assert (canary.failures, dict(canary.errors)) == (1, {"HTTP 500": 1})
    assert canary.latency.total == 1  # failed turns have no latency sample
    assert tally.tracks["stable"].ttft.percentile(0.5) == 20
    assert list(tally.phases) == ["before", "phase 1"]
    assert set(tally.phases["phase 1"]) == {"canary", NO_TRACK}
    total = tally.total()
    assert (total.requests, total.failures, total.error_share) == (4, 2, 0.5)


@pytest.mark.parametrize(
    ("sightings", "violations"),
    [
        ([("u1", "stable", G1), ("u1", "stable", G1)], []),
        # a weight change between two sightings moves a user legitimately
        ([("u1", "stable", G1), ("u1", "canary", G2)], []),
        ([("u1", "stable", G1), ("u1", "canary", G1)], [Violation(G1, "u1", ("canary", "stable"))]),
        # a replica still on the old generation, then back: each epoch is consistent
        ([("u1", "stable", G1), ("u1", "canary", G2), ("u1", "stable", G1)], []),
        (
            [("u1", "stable", G1), ("u1", "canary", G1), ("u1", "blue", G1), ("u2", "x", G1)],
            [Violation(G1, "u1", ("blue", "canary", "stable"))],
        ),
        # without a generation header, the epoch is the number of weight changes seen
        (
            [("u1", "stable", Epoch("weights", 0)), ("u1", "canary", Epoch("weights", 1))],
            [],
        ),
    ],
)
def test_stickiness_violations_are_per_epoch(
    sightings: list[tuple[str, str, Epoch]], violations: list[Violation]
) -> None:
    tally = Tally()
    for user, track, epoch in sightings:
        tally.record(turn(user, track, epoch))
    assert tally.violations() == violations


def test_failed_turns_are_not_sightings() -> None:
    """A failed turn may carry the baseline the proxy fell back to: no violation, no split."""
    tally = Tally()
    tally.record(turn("u1", "canary"))
    tally.record(turn("u1", "stable", error="HTTP 502"))
    tally.record(turn("u2", None))
    assert tally.violations() == []
    assert dict(tally.epochs[G1].users()) == {"canary": 1}


def test_epoch_names() -> None:
    assert str(G1) == "generation 1"
    assert str(Epoch("weights", 3)) == "weights #3"
