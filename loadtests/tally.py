"""What the load test's users saw, per track, per rollout phase and per routing epoch.

Plain data, no locust and no gevent: the locustfile records one ``Outcome`` per chat turn,
and the verdict and the report read the tallies. A user's track is only comparable with
another sighting of the same user under the same routing table, so sightings are kept per
``Epoch``: the routing generation the proxy stamped on the response
(``X-Splitgate-Generation``), or, when a response carries none, the number of weight
changes the load test knew of at the time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

NO_TRACK = "(none)"
"""The track of responses that carried no ``X-Splitgate-Track`` (e.g. a refused connection)."""


class Epoch(NamedTuple):
    kind: Literal["generation", "weights"]
    number: int

    def __str__(self) -> str:
        return (
            f"generation {self.number}" if self.kind == "generation" else f"weights #{self.number}"
        )


@dataclass(frozen=True)
class Outcome:
    """One chat turn as the client saw it."""

    user: str
    track: str | None
    epoch: Epoch
    phase: str
    stream: bool
    latency_ms: float
    ttft_ms: float | None = None
    """Streams only: until the first SSE ``data:`` event."""
    error: str | None = None
    """Why the turn failed (``HTTP 503``, ``connect``, ``truncated`` …); ``None`` if it did not."""


def _bucket(ms: float) -> int:
    # Two significant digits above 100 ms, as locust rounds: percentiles stay exact enough
    # while a long run keeps a few hundred counters instead of every sample.
    value = max(round(ms), 0)
    if value < 100:
        return value
    digits = len(str(value)) - 2
    return round(value, -digits)


@dataclass
class Histogram:
    counts: Counter[int] = field(default_factory=Counter)
    total: int = 0

    def add(self, ms: float) -> None:
        self.counts[_bucket(ms)] += 1
        self.total += 1

    def percentile(self, q: float) -> int | None:
        """The smallest recorded value with at least ``q`` (0–1) of the samples at or below it."""
        if not self.total:
            return None
        wanted = max(q * self.total, 1)
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= wanted:
                return value
        return max(self.counts)


@dataclass
class TrackStats:
    requests: int = 0
    failures: int = 0
    streams: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency: Histogram = field(default_factory=Histogram)
    ttft: Histogram = field(default_factory=Histogram)

    def add(self, outcome: Outcome) -> None:
        self.requests += 1
        self.streams += outcome.stream
        if outcome.error is not None:
            self.failures += 1
            self.errors[outcome.error] += 1
            return
        self.latency.add(outcome.latency_ms)
        if outcome.ttft_ms is not None:
            self.ttft.add(outcome.ttft_ms)

    @property
    def error_share(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass
class EpochSightings:
    """Who was seen on which track under one routing epoch."""

    user_track: dict[str, str] = field(default_factory=dict)
    """Each user's first track in this epoch."""
    requests: Counter[str] = field(default_factory=Counter)
    moved: dict[str, set[str]] = field(default_factory=dict)
    """Users seen on more than one track in this epoch, with every track they were seen on."""

    def add(self, user: str, track: str) -> None:
        self.requests[track] += 1
        first = self.user_track.setdefault(user, track)
        if first != track:
            self.moved.setdefault(user, {first}).add(track)

    def users(self) -> Counter[str]:
        """Distinct users per track (by the track each was first seen on)."""
        return Counter(self.user_track.values())


@dataclass(frozen=True)
class Violation:
    epoch: Epoch
    user: str
    tracks: tuple[str, ...]

    def __str__(self) -> str:
        return f"user {self.user!r} on {' and '.join(self.tracks)} under {self.epoch}"


class Tally:
    """Every outcome, summed per track, per phase (then per track) and per routing epoch.

    Only answered turns (a track header and no error) count as sightings for the split and
    stickiness: a failed turn may carry the track the proxy fell back to.
    """

    def __init__(self) -> None:
        self.tracks: dict[str, TrackStats] = {}
        self.phases: dict[str, dict[str, TrackStats]] = {}
        self.epochs: dict[Epoch, EpochSightings] = {}

    def record(self, outcome: Outcome) -> None:
        track = outcome.track or NO_TRACK
        self.tracks.setdefault(track, TrackStats()).add(outcome)
        self.phases.setdefault(outcome.phase, {}).setdefault(track, TrackStats()).add(outcome)
        if outcome.track is not None and outcome.error is None:
            sightings = self.epochs.setdefault(outcome.epoch, EpochSightings())
            sightings.add(outcome.user, outcome.track)

    def total(self) -> TrackStats:
        return merged(self.tracks.values())

    def violations(self) -> list[Violation]:
        return [
            Violation(epoch, user, tuple(sorted(tracks)))
            for epoch, sightings in sorted(self.epochs.items())
            for user, tracks in sorted(sightings.moved.items())
        ]


def merged(parts: Iterable[TrackStats]) -> TrackStats:
    """The sum of several ``TrackStats`` (e.g. all tracks of a phase)."""
    out = TrackStats()
    for part in parts:
        out.requests += part.requests
        out.failures += part.failures
        out.streams += part.streams
        out.errors.update(part.errors)
        out.latency.counts.update(part.latency.counts)
        out.latency.total += part.latency.total
        out.ttft.counts.update(part.ttft.counts)
        out.ttft.total += part.ttft.total
    return out
