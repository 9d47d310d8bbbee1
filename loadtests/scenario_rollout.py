"""A whole rollout under load: start it once the load is steady, follow it to its end.

The locustfile runs this when ``LOADTEST_ROLLOUT_PLAN`` names a plan file: a background
loop calls ``step`` every poll interval. The current ``label`` (``before the rollout``,
``phase 2: 25%``, ``phase 3: 50% (awaiting_approval)``, ``after: promoted`` …) tags every
turn the users make, so the report shows what users saw in each phase. Nothing here sleeps
or reads a clock: the loop passes ``now``, and tests step it by hand with a fake API.
"""

from __future__ import annotations

from typing import Any, Protocol

from loadtests.admin import AdminError
from loadtests.verdict import RolloutResult

BEFORE = "before the rollout"
FINAL = ("promoted", "rolled_back", "aborted")
MAX_READ_ERRORS = 30
"""Consecutive failed reads of the rollout (one per poll) before the scenario gives up."""


class RolloutApi(Protocol):
    def start_rollout(self, plan_yaml: str) -> dict[str, Any]: ...

    def rollout(self, rollout_id: str) -> dict[str, Any]: ...


def phase_label(record: dict[str, Any]) -> str:
    """Where a rollout record stands, as a row name for the report."""
    state = record["state"]
    status = str(state["status"])
    if status in FINAL:
        return f"after: {status}"
    if status == "pending":
        return "rollout pending"
    index = int(state["phase"])
    phases = record.get("plan", {}).get("phases", [])
    name = phases[index]["name"] if index < len(phases) else "?"
    label = f"phase {index + 1}: {name}"
    return label if status == "running" else f"{label} ({status})"


def last_event(record: dict[str, Any]) -> tuple[str, str]:
    """The kind and detail of the rollout's newest history event (empty if none yet)."""
    history = record["state"]["history"]
    return (str(history[-1]["kind"]), str(history[-1]["detail"])) if history else ("", "")


class RolloutScenario:
    def __init__(
        self, api: RolloutApi, plan_yaml: str, *, start_after_s: float, expect: str
    ) -> None:
        self._api = api
        self._plan = plan_yaml
        self._start_after_s = start_after_s
        self._expect = expect
        self._steady_at: float | None = None
        self._read_errors = 0
        self.rollout_id: str | None = None
        self.status: str | None = None
        self.detail = ""
        self.label = BEFORE
        self.timeline: list[tuple[float, str]] = []
        """When each label began, and the rollout's last event then."""

    def steady(self, now: float) -> None:
        """Every user has been spawned: the warm-up before the rollout counts from here."""
        if self._steady_at is None:
            self._steady_at = now

    def step(self, now: float) -> bool:
        """Start or follow the rollout; true once it is over (ended, or could not start)."""
        if self.rollout_id is None:
            if self._steady_at is None or now < self._steady_at + self._start_after_s:
                return False
            try:
                record = self._api.start_rollout(self._plan)
            except AdminError as exc:
                self.detail = str(exc)
                return True
            self.rollout_id = str(record["id"])
        else:
            try:
                record = self._api.rollout(self.rollout_id)
            except AdminError as exc:
                self._read_errors += 1
                self.detail = str(exc)
                return self._read_errors >= MAX_READ_ERRORS
        self._read_errors = 0
        self._seen(record, now)
        return self.status in FINAL

    def result(self) -> RolloutResult:
        return RolloutResult(self._expect, self.status, self.detail)

    def _seen(self, record: dict[str, Any], now: float) -> None:
        self.status = str(record["state"]["status"])
        kind, detail = last_event(record)
        self.detail = f"{kind}: {detail}" if kind else ""
        label = phase_label(record)
        if label != self.label or not self.timeline:
            self.label = label
            # A phase's own event only repeats its name; any other says why the label changed.
            self.timeline.append(
                (now, label if kind in ("", "phase") else f"{label} ({self.detail})")
            )
