"""Decision quality of the canary analysis, by seeded simulation over the real code.

    python bench/decisions.py [--runs 5000] [--only NAME ...]

Whole rollouts (``control.analysis.simulate_rollout``): the threshold checks (``assess``,
``breached``), the four comparisons with the baseline and the canary state machine together,
for three kinds of route, then the comparisons alone (``control.analysis.simulate``). Prints
one markdown table; each row's wall time goes to stderr. Every row has its own fixed seed,
so a row's figures do not depend on which other rows run.

- demo: 20 requests/s, looks every 2 s, criteria ``error_rate < 2%`` and
  ``latency_p95 < 2000ms``, ``rollback_if error_rate > 10%``, the last phase approved at once.
  Healthy: 0.5 % errors on both arms. "as shipped" is ``config/examples/plans/demo-canary.yaml``
  (20 % and 50 % for 30 s, max_duration 2 min); "proposed" lets the first phase take up
  to 10 minutes and the second 5 (most rollouts still end in about 3 minutes).
- low traffic: 2 requests/s, looks every 10 s, 5/25/50/100 % for 10 minutes each,
  ``on_inconclusive: promote`` (the setting for low-traffic routes), same criteria; 1 % errors
  against 1 % (healthy) or 3 % (3x).
- sticky users: 20 requests/s from users who send 1–50 requests each, one every 10 s on
  average, with a per-user error propensity from a Beta law of mean 1 % and a + b = 5;
  10/25/50/100 % for 5 minutes each, ``on_inconclusive: promote``. Uncorrected, corrected
  with ``design_effect`` 6 on the comparisons alone, and on the threshold checks too.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable

from config.plans import CanaryPlan
from control.analysis.simulate import Signal, rollback_rate, run_family
from control.analysis.simulate_rollout import (
    Analysis,
    Arm,
    Result,
    Traffic,
    Users,
    make_plan,
    run_many,
)
from control.looks import MIN_RATINGS, MIN_REQUESTS, TESTS
from control.strategies.canary import Status

CRITERIA = {"error_rate": "< 2%", "latency_p95": "< 2000ms"}
ALARM = ("error_rate > 10%",)
STICKY_DESIGN_EFFECT = 6.0
"""1 + (m - 1)·ρ with m ≈ 34, the size-weighted mean of 1–50 requests per user, and the
intra-user correlation ρ = 1/(a + b + 1) = 1/6."""


def demo(most_first: float, most_second: float) -> CanaryPlan:
    phases = [(20.0, 30.0, most_first), (50.0, 30.0, most_second), (100.0, None, None)]
    return make_plan(phases, CRITERIA, rollback_if=ALARM, last_needs_approval=True)


LOW = make_plan(
    [(share, 600.0, None) for share in (5.0, 25.0, 50.0, 100.0)],
    CRITERIA,
    on_inconclusive="promote",
    rollback_if=ALARM,
)
STICKY = make_plan(
    [(share, 300.0, None) for share in (10.0, 25.0, 50.0, 100.0)],
    CRITERIA,
    on_inconclusive="promote",
    rollback_if=ALARM,
)
PLAIN = Analysis(TESTS, MIN_REQUESTS, MIN_RATINGS)
COMPARISONS_CORRECTED = Analysis(
    TESTS, MIN_REQUESTS, MIN_RATINGS, design_effect=STICKY_DESIGN_EFFECT
)
CORRECTED = Analysis(
    TESTS,
    MIN_REQUESTS,
    MIN_RATINGS,
    design_effect=STICKY_DESIGN_EFFECT,
    threshold_design_effect=STICKY_DESIGN_EFFECT,
)
USERS = Users(most_requests=50, concentration=5.0, gap_s=10.0)


def share(results: list[Result], status: Status) -> float:
    return sum(r.status is status for r in results) / len(results)


def outcome(results: list[Result]) -> str:
    median = statistics.median(r.seconds for r in results) / 60
    return (
        f"{share(results, Status.PROMOTED):.1%} promoted, "
        f"{share(results, Status.ROLLED_BACK):.2%} rolled back, "
        f"{share(results, Status.PAUSED):.2%} paused; median {median:.1f} min"
    )


def within(limit_s: float) -> Callable[[list[Result]], str]:
    def judge(results: list[Result]) -> str:
        quick = sum(r.status is Status.PROMOTED and r.seconds <= limit_s for r in results)
        return f"{quick / len(results):.1%} promoted within {limit_s / 60:g} min; " + outcome(
            results
        )

    return judge


SCENARIOS: dict[
    str, tuple[str, str, Callable[[int], list[Result]], Callable[[list[Result]], str]]
] = {
    "demo-shipped": (
        "demo as shipped (max 2 min a phase), A/A 0.5 %",
        "< 1 % rolled back, < 1 % paused",
        lambda runs: run_many(
            runs, 101, demo(120, 120), Traffic(20, look_s=2), PLAIN, Arm(), Arm()
        ),
        outcome,
    ),
    "demo-proposed": (
        "demo proposed (max 10 min, then 5 min), A/A 0.5 %",
        "< 1 % rolled back, < 1 % paused",
        lambda runs: run_many(
            runs, 102, demo(600, 300), Traffic(20, look_s=2), PLAIN, Arm(), Arm()
        ),
        outcome,
    ),
    "demo-bad": (
        "demo proposed, candidate at 5 % errors",
        "rolled back",
        lambda runs: run_many(
            runs, 103, demo(600, 300), Traffic(20, look_s=2), PLAIN, Arm(), Arm(errors=0.05)
        ),
        outcome,
    ),
    "low-healthy": (
        "low traffic 2 req/s, 1 % vs 1 %",
        "≥ 95 % promoted within 120 min",
        lambda runs: run_many(
            runs, 104, LOW, Traffic(2), PLAIN, Arm(errors=0.01), Arm(errors=0.01)
        ),
        within(3 * 2400),
    ),
    "low-3x": (
        "low traffic 2 req/s, 3 % vs 1 %",
        "≥ 90 % rolled back",
        lambda runs: run_many(
            runs, 105, LOW, Traffic(2), PLAIN, Arm(errors=0.01), Arm(errors=0.03)
        ),
        outcome,
    ),
    "sticky-plain": (
        "sticky users, A/A 1 %, uncorrected",
        "< 1 % rolled back",
        lambda runs: run_many(
            runs, 106, STICKY, Traffic(20, users=USERS), PLAIN, Arm(errors=0.01), Arm(errors=0.01)
        ),
        outcome,
    ),
    "sticky-comparisons": (
        "sticky users, A/A 1 %, design effect 6 on the comparisons only",
        "< 1 % rolled back",
        lambda runs: run_many(
            runs,
            109,
            STICKY,
            Traffic(20, users=USERS),
            COMPARISONS_CORRECTED,
            Arm(errors=0.01),
            Arm(errors=0.01),
        ),
        outcome,
    ),
    "sticky-corrected": (
        "sticky users, A/A 1 %, design effect 6 on every test",
        "< 1 % rolled back",
        lambda runs: run_many(
            runs,
            107,
            STICKY,
            Traffic(20, users=USERS),
            CORRECTED,
            Arm(errors=0.01),
            Arm(errors=0.01),
        ),
        outcome,
    ),
    "sticky-3x": (
        "sticky users, 3 % vs 1 %, design effect 6 on every test",
        "rolled back",
        lambda runs: run_many(
            runs,
            108,
            STICKY,
            Traffic(20, users=USERS),
            CORRECTED,
            Arm(errors=0.01),
            Arm(errors=0.03),
        ),
        outcome,
    ),
}


def comparisons_alone(runs: int) -> list[str]:
    """The rows of the comparisons by themselves (their module docstrings' targets)."""
    rows = []
    aa, _ = rollback_rate(runs, seed=20261128, baseline_rate=0.01, candidate_rate=0.01)
    rows.append(f"| comparisons alone: A/A 1 %, 80 looks | < 1 % rolled back | {aa:.2%} |")
    _, three = rollback_rate(
        runs, seed=7, baseline_rate=0.01, candidate_rate=0.03, schedule=((0.05, 40),)
    )
    early = sum(o.rolled_back and o.candidate_requests < 1000 for o in three) / runs
    served = statistics.median(o.candidate_requests for o in three if o.rolled_back)
    rows.append(
        f"| comparisons alone: 3 % vs 1 % at 5 % traffic | ≥ 95 % before 1,000 requests "
        f"| {early:.1%} (median {served:.0f} requests) |"
    )
    _, outage = rollback_rate(runs, seed=11, baseline_rate=0.01, candidate_rate=0.20)
    first = sum(o.rolled_back and o.look == 2 for o in outage) / runs
    rows.append(f"| comparisons alone: 20 % failing | first judged look | {first:.1%} |")
    # Healthy candidate: 1 % errors, 5 % of requests slower than the frozen p95 edge, 10 %
    # of answers labelled (5 % hallucinated), 5 % rated (10 % of ratings bad).
    signals = {
        "error_rate": Signal(1.0, 0.01, TESTS["error_rate"], MIN_REQUESTS),
        "slow_requests": Signal(1.0, 0.05, TESTS["slow_requests"], MIN_REQUESTS),
        "hallucinations": Signal(0.10, 0.05, TESTS["hallucinations"], MIN_RATINGS),
        "bad_ratings": Signal(0.05, 0.10, TESTS["bad_ratings"], MIN_RATINGS),
    }
    rng = random.Random(20261129)
    failed = [run_family(rng, signals) for _ in range(runs)]
    family = sum(f is not None for f in failed) / runs
    rows.append(f"| comparisons alone: all four, A/A | < 1 % rolled back | {family:.2%} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--only", nargs="*", choices=[*SCENARIOS, "comparisons"])
    args = p.parse_args()
    chosen = args.only or [*SCENARIOS, "comparisons"]
    print(f"| scenario ({args.runs} runs each) | target | result |\n|---|---|---|")
    for name in chosen:
        started = time.monotonic()
        if name == "comparisons":
            for row in comparisons_alone(args.runs):
                print(row, flush=True)
        else:
            title, target, simulate, judge = SCENARIOS[name]
            print(f"| {title} | {target} | {judge(simulate(args.runs))} |", flush=True)
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
