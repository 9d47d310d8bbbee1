"""The exit rules, table-driven: each row is a run's tallies and the reasons it fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from loadtests.tally import Epoch, EpochSightings, Outcome, Tally
from loadtests.verdict import (
    RolloutResult,
    Rules,
    chance,
    check_split,
    judge,
)

G1 = Epoch("generation", 1)
G2 = Epoch("generation", 2)
RULES = Rules(max_error_share=0.01, split_tolerance=0.02, split_min_users=200)


def users(epoch: Epoch, **per_track: int) -> list[Outcome]:
    """``per_track`` distinct users answered on each track under ``epoch``."""
    return [
        Outcome(f"{track}-{epoch.number}-{i}", track, epoch, "p", False, 50.0)
        for track, n in per_track.items()
        for i in range(n)
    ]


def failures(n: int, track: str | None = "canary", error: str = "HTTP 500") -> list[Outcome]:
    return [Outcome(f"f{i}", track, G1, "p", False, 50.0, None, error) for i in range(n)]


@dataclass
class Case:
    outcomes: list[Outcome]
    expected: Mapping[Epoch, Mapping[str, float]] = field(default_factory=dict)
    rollout: RolloutResult | None = None
    exceptions: int = 0
    reasons: tuple[str, ...] = ()


CASES = {
    "clean run": Case(users(G1, stable=900, canary=100), {G1: {"stable": 90, "canary": 10}}),
    "no expectation: split only reported": Case(users(G1, stable=500, canary=500)),
    "nothing answered": Case([], reasons=("no chat turn was made",)),
    "errors at the limit pass": Case(users(G1, stable=99) + failures(1)),
    "errors over the limit": Case(
        users(G1, stable=98) + failures(1) + failures(1, None, "connect"),
        reasons=("2.00 % of 100 turns failed (limit 1 %): HTTP 500 ×1, connect ×1",),
    ),
    "split off with enough users": Case(
        users(G1, stable=1785, canary=315),
        {G1: {"stable": 90, "canary": 10}},
        reasons=(
            "split off: generation 1: canary 15.0 % (expected 10 %), stable 85.0 % "
            "(expected 90 %) of 2100 users, tolerance ±2 pp",
        ),
    ),
    "off by more than the tolerance but within chance at 200 users": Case(
        users(G1, stable=170, canary=30), {G1: {"stable": 90, "canary": 10}}
    ),
    "gross misrouting shows with few users": Case(
        users(G1, stable=180, canary=20),
        {G1: {"stable": 50, "canary": 50}},
        reasons=(
            "split off: generation 1: canary 10.0 % (expected 50 %), stable 90.0 % "
            "(expected 50 %) of 200 users, tolerance ±2 pp",
        ),
    ),
    "fewer users than the floor are never judged": Case(
        users(G1, stable=180, canary=19), {G1: {"stable": 50, "canary": 50}}
    ),
    "split within tolerance": Case(
        users(G1, stable=2140, canary=260), {G1: {"stable": 90, "canary": 10}}
    ),
    "an unexpected track counts against the split": Case(
        users(G1, stable=200, blue=50),
        {G1: {"stable": 100}},
        reasons=(
            "split off: generation 1: blue 20.0 % (expected 0 %), stable 80.0 % "
            "(expected 100 %) of 250 users, tolerance ±2 pp",
        ),
    ),
    "each epoch judged by its own weights": Case(
        users(G1, stable=900, canary=100) + users(G2, stable=2250, canary=750),
        {G1: {"stable": 90, "canary": 10}, G2: {"stable": 75, "canary": 25}},
    ),
    "an epoch without known weights is not judged": Case(
        users(G1, stable=900, canary=100) + users(G2, stable=100, canary=900),
        {G1: {"stable": 90, "canary": 10}},
    ),
    "a stickiness violation": Case(
        [*users(G1, stable=3), Outcome("stable-1-0", "canary", G1, "p", False, 50.0)],
        reasons=(
            "1 stickiness violations: user 'stable-1-0' on canary and stable under generation 1",
        ),
    ),
    "answers without the track header": Case(
        [Outcome("u", None, G1, "p", False, 50.0)] * 3,
        reasons=("3 answers carried no X-Splitgate-Track (is the host a splitgate proxy?)",),
    ),
    "rollout promoted as expected": Case(
        users(G1, stable=10), rollout=RolloutResult("promoted", "promoted", "every phase passed")
    ),
    "rollout rolled back, promotion expected": Case(
        users(G1, stable=10),
        rollout=RolloutResult("promoted", "rolled_back", "rolled_back: error_rate 9 % > 5 %"),
        reasons=(
            "the rollout ended rolled_back, expected promoted: rolled_back: error_rate 9 % > 5 %",
        ),
    ),
    "rollback expected and seen": Case(
        users(G1, stable=10), rollout=RolloutResult("rolled_back", "rolled_back")
    ),
    "any end accepted": Case(users(G1, stable=10), rollout=RolloutResult("any", "aborted")),
    "rollout still running": Case(
        users(G1, stable=10),
        rollout=RolloutResult("any", "awaiting_approval", "phase: 50%"),
        reasons=("the rollout had not ended when the run stopped: awaiting_approval phase: 50%",),
    ),
    "rollout never started": Case(
        users(G1, stable=10),
        rollout=RolloutResult("promoted", None, "POST /v1/rollouts: HTTP 409: busy"),
        reasons=("the rollout did not start: POST /v1/rollouts: HTTP 409: busy",),
    ),
    "the load test itself raised": Case(
        users(G1, stable=10),
        exceptions=2,
        reasons=("the load test's own code raised 2 times (see locust's log)",),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_judge(case: Case) -> None:
    tally = Tally()
    for outcome in case.outcomes:
        tally.record(outcome)
    verdict = judge(tally, case.expected.get, RULES, case.rollout, case.exceptions)
    assert verdict.reasons == case.reasons
    assert verdict.exit_code == (1 if case.reasons else 0)


@pytest.mark.parametrize(
    ("share", "users", "rules", "margin"),
    [
        (0.1, 2025, Rules(z=3), 0.02),  # 3 · sqrt(0.09 / 2025)
        (0.5, 10_000, Rules(z=3.5), 0.0175),
        (0.0, 500, RULES, 0.0),  # nothing random: any gap is real
        (1.0, 500, RULES, 0.0),
    ],
)
def test_chance_margin(share: float, users: int, rules: Rules, margin: float) -> None:
    assert chance(share, users, rules) == pytest.approx(margin)


@pytest.mark.parametrize(
    ("canary_users", "off", "unclear"),
    [
        (30, (), ()),  # exactly 10 %
        (39, (), ("canary", "stable")),  # 13 %: over the tolerance, within chance at 300
        (60, ("canary", "stable"), ()),  # 20 %: beyond both
    ],
)
def test_split_check_details(
    canary_users: int, off: tuple[str, ...], unclear: tuple[str, ...]
) -> None:
    sightings = EpochSightings()
    for i in range(300):
        sightings.add(f"u{i}", "canary" if i < canary_users else "stable")
    sightings.add("u0", "canary")  # a repeat visit counts once
    check = check_split(G1, sightings, {"stable": 90, "canary": 10}, RULES)
    assert (check.users, check.judged, check.off, check.unclear) == (300, True, off, unclear)
    assert check.failed is bool(off)
    assert check.observed["canary"] == pytest.approx(canary_users / 300)
