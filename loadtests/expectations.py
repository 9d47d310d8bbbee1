"""The weights each routing epoch should split users by, as far as the load test knows them.

Two sources: a fixed expectation given up front (``LOADTEST_EXPECT_WEIGHTS``), which then
holds for every epoch, or snapshots of the route read from the admin API while the test runs,
each tagged with the routing generation it was read at. A generation the snapshots missed (it
came and went between two reads) has no expectation, and its split is not judged.
"""

from __future__ import annotations

from collections.abc import Mapping

from loadtests.tally import Epoch

Weights = Mapping[str, float]
"""Track name → percentage; the values add up to 100."""


def parse_weights(text: str) -> dict[str, float]:
    """``"stable=90,canary=10"`` → ``{"stable": 90.0, "canary": 10.0}``; raises ``ValueError``."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{part.strip()!r}: expected TRACK=PERCENT")
        if name in weights:
            raise ValueError(f"track {name!r} is named twice")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{part.strip()!r}: {value.strip()!r} is not a number") from None
        if not 0 <= weight <= 100:
            raise ValueError(f"{part.strip()!r}: a weight is a percentage from 0 to 100")
        weights[name] = weight
    total = sum(weights.values())
    if abs(total - 100) > 1e-6:
        raise ValueError(f"weights must add up to 100 (got {total:g})")
    return weights


def route_weights(route: Mapping[str, object]) -> dict[str, float]:
    """The weights of a route as the admin API shows it (``{"tracks": [{"name", "weight"}]}``)."""
    tracks = route.get("tracks")
    if not isinstance(tracks, list):
        raise ValueError("the route has no list of tracks")
    return {str(t["name"]): float(t["weight"]) for t in tracks}


class WeightBook:
    """Expected weights by epoch. Fed by one writer (the admin poller); read at the end."""

    def __init__(self, fixed: Weights | None = None) -> None:
        self._fixed = dict(fixed) if fixed is not None else None
        self._by_generation: dict[int, dict[str, float]] = {}
        self._by_serial: dict[int, dict[str, float]] = {0: self._fixed} if self._fixed else {}
        self._serial = 0

    @property
    def known(self) -> bool:
        """Whether any expectation exists at all (otherwise the split is only reported)."""
        return self._fixed is not None or bool(self._by_generation)

    def note(self, generation: int, weights: Weights) -> None:
        """The admin API showed ``weights`` at ``generation``."""
        snapshot = dict(weights)
        self._by_generation[generation] = snapshot
        if self._by_serial.get(self._serial) != snapshot:
            if self._by_serial:
                self._serial += 1
            self._by_serial[self._serial] = snapshot

    def epoch(self, generation: str | None) -> Epoch:
        """The epoch of a response stamped with ``X-Splitgate-Generation: generation`` (or not)."""
        if generation is not None and generation.isdigit():
            return Epoch("generation", int(generation))
        return Epoch("weights", self._serial)

    def expected(self, epoch: Epoch) -> Weights | None:
        if epoch.kind == "generation":
            return self._by_generation.get(epoch.number, self._fixed)
        return self._by_serial.get(epoch.number)
