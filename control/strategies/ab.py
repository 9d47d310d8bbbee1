"""A/B tests as pure transitions: a fixed split for a set time or sample size, then a report.

Unlike a canary nothing is promoted and nothing rolls back by itself: the split is set at the
start, held while the test runs, and at the end the route gets back the weights it had before
(or keeps the split when the plan says ``afterwards: keep``). The comparison of every metric
is computed by the runner when ``tick`` says the test is over. Pause stops the test's clock;
abort ends it without a report and restores the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from config.plans import ABTestPlan
from control.strategies.canary import FINAL, CommandRefused, State, Status


@dataclass(frozen=True)
class SetAll:
    """Give every named track its percentage (the rest of the route's tracks get 0)."""

    weights: Mapping[str, float]


def start(plan: ABTestPlan, state: State, now: float) -> tuple[State, list[SetAll]]:
    if state.status is not Status.PENDING:
        raise CommandRefused("start", state.status)
    split = ", ".join(f"{name} {share:g}%" for name, share in plan.split.items())
    state = replace(state, status=Status.RUNNING, phase=0, phase_started_at=now)
    return state.note(now, "phase", f"A/B split: {split}"), [SetAll(dict(plan.split))]


def finished(plan: ABTestPlan, state: State, now: float, served: Mapping[str, int]) -> str | None:
    """Why the test is over (time or sample size reached), or None while it runs."""
    if state.status is not Status.RUNNING:
        return None
    if plan.duration is not None and now - state.phase_started_at >= plan.duration:
        return f"ran for {plan.duration:g} s"
    if plan.sample_size is not None and all(
        served.get(name, 0) >= plan.sample_size for name in plan.split
    ):
        return f"each version served {plan.sample_size} requests"
    return None


def complete(
    plan: ABTestPlan, state: State, now: float, why: str, restore: Mapping[str, float]
) -> tuple[State, list[SetAll]]:
    state = replace(state, status=Status.COMPLETED, generation=None).note(now, "completed", why)
    return state, ([SetAll(dict(restore))] if plan.afterwards == "restore" else [])


def command(
    plan: ABTestPlan, state: State, name: str, now: float, restore: Mapping[str, float]
) -> tuple[State, list[SetAll]]:
    """pause, resume or abort; approve and promote do not apply to an A/B test."""
    if name == "pause" and state.status is Status.RUNNING:
        return replace(state, status=Status.PAUSED, paused_from=Status.RUNNING).note(
            now, "paused", ""
        ), []
    if name == "resume" and state.status is Status.PAUSED:
        paused_at = next((e.at for e in reversed(state.history) if e.kind == "paused"), now)
        # The time spent paused does not count towards the test's duration.
        started = state.phase_started_at + (now - paused_at)
        return replace(
            state, status=Status.RUNNING, paused_from=None, phase_started_at=started
        ).note(now, "resumed", ""), []
    if name == "abort" and state.status not in FINAL:
        state = replace(state, status=Status.ABORTED, generation=None)
        return state.note(now, "aborted", "by request, no report"), [SetAll(dict(restore))]
    raise CommandRefused(name, state.status)
