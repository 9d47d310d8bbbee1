"""Seeded simulations of the comparisons with the baseline alone (``RateTest``).

Whole rollouts — threshold checks, comparisons and the canary state machine together, with
independent or sticky users — are simulated in ``control.analysis.simulate_rollout``; both
feed the decision-quality record, ``bench/decisions.py``.

Traffic: ``rate`` requests a second, one look every ``look_s`` seconds, the candidate's share
following ``schedule`` (share, number of looks). Each arm's events per look are drawn from a
Poisson law with mean ``requests × event rate`` (binomial events are rare enough for it).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from control.analysis.sequential import Interval, RateTest

CANARY_SCHEDULE = ((0.05, 20), (0.10, 20), (0.25, 20), (0.50, 20))


@dataclass(frozen=True)
class Outcome:
    rolled_back: bool
    candidate_requests: int
    """Requests the candidate had served when the rollout stopped (or ended)."""
    look: int


def poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:  # normal approximation keeps large means cheap
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def run_rollout(
    rng: random.Random,
    baseline_rate: float,
    candidate_rate: float,
    *,
    requests_per_look: int = 1500,
    schedule: tuple[tuple[float, int], ...] = CANARY_SCHEDULE,
    min_requests: int = 100,
    alpha: float = 0.01,
) -> Outcome:
    test = RateTest(alpha=alpha)
    look = 0
    for share, looks in schedule:
        for _ in range(looks):
            look += 1
            n_c = round(requests_per_look * share)
            n_b = requests_per_look - n_c
            test.add(
                Interval(
                    n_c, poisson(rng, n_c * candidate_rate), n_b, poisson(rng, n_b * baseline_rate)
                )
            )
            if test.verdict(min_requests) == "fail":
                return Outcome(True, test.candidate_requests, look)
    return Outcome(False, test.candidate_requests, look)


def rollback_rate(
    runs: int, seed: int, baseline_rate: float, candidate_rate: float, **options: object
) -> tuple[float, list[Outcome]]:
    rng = random.Random(seed)
    outcomes = [run_rollout(rng, baseline_rate, candidate_rate, **options) for _ in range(runs)]  # type: ignore[arg-type]
    return sum(o.rolled_back for o in outcomes) / runs, outcomes


@dataclass(frozen=True)
class Signal:
    """One comparison of the rollback family: how often a request is judged, how often it is an
    event, and the test's alpha (``control.rollouts.TESTS``)."""

    judged: float
    rate: float
    alpha: float
    minimum: int


def run_family(
    rng: random.Random,
    signals: dict[str, Signal],
    *,
    requests_per_look: int = 1500,
    schedule: tuple[tuple[float, int], ...] = CANARY_SCHEDULE,
) -> str | None:
    """An A/A rollout judged by every comparison at once: the first one to fail, or None."""
    tests = {name: RateTest(alpha=s.alpha) for name, s in signals.items()}
    for share, looks in schedule:
        for _ in range(looks):
            n_c = round(requests_per_look * share)
            n_b = requests_per_look - n_c
            for name, s in signals.items():
                j_c, j_b = poisson(rng, n_c * s.judged), poisson(rng, n_b * s.judged)
                test = tests[name]
                test.add(Interval(j_c, poisson(rng, j_c * s.rate), j_b, poisson(rng, j_b * s.rate)))
                if test.verdict(s.minimum) == "fail":
                    return name
    return None
