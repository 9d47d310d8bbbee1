"""Upstream 429s are capacity, not the candidate's errors.

By default (``comparison.count_429_as_errors: false``) a request its upstream answered 429
counts neither as an error nor as a request in the error rate and its comparison
(``served``): the upstream refused it; the candidate's own code never ran. And while the
candidate is rate-limited — more than ``capacity.max_429_rate`` of its requests answered 429
in the interval since the last look — its phase holds (``limited``): no verdict advances it
or rolls it back until the limit lifts or its ``max_duration`` passes.
"""

from __future__ import annotations

from dataclasses import replace

from config.metrics import TrackWindow
from config.records import SequentialSlot
from control.analysis.verdict import Assessment, Verdict

SLOT = "capacity"
"""The record's ``tests`` entry that keeps the counts of the last look and the state."""
MIN_INTERVAL = 20
"""Requests an interval needs to change the state; a quieter one keeps the previous one."""


def served(window: TrackWindow) -> TrackWindow:
    """The window without its upstream 429s (as errors and as requests)."""
    limited = window.errors.get("upstream_429", 0)
    if not limited:
        return window
    errors = {**window.errors, "upstream_429": 0}
    return replace(window, requests=max(0, window.requests - limited), errors=errors)


def limited(
    slot: SequentialSlot | None, candidate: TrackWindow, max_rate: float
) -> tuple[Assessment | None, SequentialSlot]:
    """Whether the candidate is rate-limited now (an INCONCLUSIVE ``capacity`` assessment
    saying so, or None) and the slot's new state. ``candidate``: its counts since the
    rollout began, 429s included."""
    totals = [candidate.requests, candidate.errors.get("upstream_429", 0)]
    was = slot.consumed if slot is not None and len(slot.consumed) == 2 else [0, 0]
    state = bool(slot.test.get("limited", False)) if slot is not None else False
    requests, rejected = (max(0, t - w) for t, w in zip(totals, was, strict=True))
    share = rejected / requests if requests else 0.0
    if requests >= MIN_INTERVAL:
        state = share > max_rate
    elif requests == 0 and slot is not None:
        totals = was
    new = SequentialSlot(test={"limited": state, "share": share}, consumed=totals)
    if not state:
        return None, new
    reason = (
        f"rate-limited: its upstream answered 429 to {rejected} of {requests} requests "
        f"({100 * share:.2g} %) since the last look, above {100 * max_rate:g} %; the phase "
        "holds until the limit lifts or its max_duration passes"
    )
    threshold = f"< {100 * max_rate:g}%"
    return Assessment("capacity", Verdict.INCONCLUSIVE, share, threshold, requests, reason), new
