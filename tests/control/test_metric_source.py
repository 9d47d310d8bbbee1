"""The runner's counts come from any ``MetricSource``: here one held in memory, no Redis."""

from __future__ import annotations

from config.metrics import WINDOW_S, TrackWindow, window_start
from control import accumulate
from control.metric_source import Merged, MetricSource

NOW = 1_800_000_000.0


class InMemory:
    """Windows by start time, as a source other than the proxies' Redis windows could serve."""

    def __init__(self) -> None:
        self.windows: dict[int, Merged] = {}

    def serve(self, at: float, track: str, version: str, requests: int) -> None:
        merged = self.windows.setdefault(window_start(at), {})
        window = merged.setdefault((track, version), TrackWindow())
        window.requests += requests

    async def read(self, route: str, span_s: float) -> tuple[int, int, Merged]:
        raise AssertionError("not used by the accumulators")

    async def read_each(self, route: str, first: int, last: int) -> list[tuple[int, Merged]]:
        return [
            (start, self.windows.get(start, {}))
            for start in range(first, last + WINDOW_S, WINDOW_S)
        ]


async def test_counts_from_a_source_held_in_memory_start_at_their_first_moment() -> None:
    source = InMemory()
    typed: MetricSource = source  # the Protocol is all the accumulators need
    source.serve(NOW, "canary", "v2", 500)  # served before the counts start, same window
    counts = await accumulate.start(typed, "chat", ["canary"], NOW + 1)
    source.serve(NOW + 2, "canary", "v2", 40)
    source.serve(NOW + WINDOW_S, "canary", "v2", 10)
    look = NOW + WINDOW_S + accumulate.GRACE_S  # the first window is closed now
    totals = await accumulate.totals(typed, "chat", counts, ["canary"], look)
    assert totals["canary"].requests == 50
    # A closed window is kept in the accumulator: a later look does not read it again.
    later = NOW + 3 * WINDOW_S
    source.windows.pop(window_start(NOW))
    totals = await accumulate.totals(typed, "chat", counts, ["canary"], later)
    assert totals["canary"].requests == 50
