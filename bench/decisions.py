"""Decision quality of the rollback test, by seeded simulation over the real analysis code.

    python bench/decisions.py [--runs 5000]

A/A: candidate and baseline both at 1 % errors, a whole canary schedule (5/10/25/50 %, 20
looks each, 1,500 requests a look): share of runs rolled back. 3x: 3 % against 1 % at 5 %
traffic: share rolled back before the candidate served 1,000 requests, and the median served.
20 %: share rolled back at the first look that meets the minimum sample (100 requests).
"""

from __future__ import annotations

import argparse
import random
import statistics

from control.analysis.simulate import Signal, rollback_rate, run_family
from control.rollouts import MIN_RATINGS, MIN_REQUESTS, TESTS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5000)
    runs = p.parse_args().runs
    aa, _ = rollback_rate(runs, seed=20261128, baseline_rate=0.01, candidate_rate=0.01)
    _, three = rollback_rate(
        runs, seed=7, baseline_rate=0.01, candidate_rate=0.03, schedule=((0.05, 40),)
    )
    early = sum(o.rolled_back and o.candidate_requests < 1000 for o in three) / runs
    served = statistics.median(o.candidate_requests for o in three if o.rolled_back)
    _, outage = rollback_rate(runs, seed=11, baseline_rate=0.01, candidate_rate=0.20)
    first = sum(o.rolled_back and o.look == 2 for o in outage) / runs
    outage_served = statistics.median(o.candidate_requests for o in outage if o.rolled_back)
    print(
        "| scenario | target | result | median candidate requests before rollback |\n|---|---|---|---|"
    )
    print(f"| A/A, 1 % vs 1 %, whole rollout ({runs} runs) | < 1 % rolled back | {aa:.2%} | — |")
    print(
        f"| 3 % vs 1 % at 5 % traffic | ≥ 95 % before 1,000 requests | {early:.1%} | {served:.0f} |"
    )
    print(f"| 20 % failing | first judged look | {first:.1%} | {outage_served:.0f} |")
    # Every comparison of the rollback family at once, on a healthy candidate: 1 % errors,
    # 5 % of requests slower than the frozen p95 edge, 10 % of answers labelled (5 %
    # hallucinated), 5 % rated (10 % of ratings bad).
    signals = {
        "error_rate": Signal(1.0, 0.01, TESTS["error_rate"], MIN_REQUESTS),
        "slow_requests": Signal(1.0, 0.05, TESTS["slow_requests"], MIN_REQUESTS),
        "hallucinations": Signal(0.10, 0.05, TESTS["hallucinations"], MIN_RATINGS),
        "bad_ratings": Signal(0.05, 0.10, TESTS["bad_ratings"], MIN_RATINGS),
    }
    rng = random.Random(20261129)
    failed = [run_family(rng, signals) for _ in range(runs)]
    family = sum(f is not None for f in failed) / runs
    by = ", ".join(f"{name} {failed.count(name) / runs:.2%}" for name in signals)
    print(
        f"| A/A, all four comparisons, whole rollout | < 1 % rolled back | {family:.2%} ({by}) | — |"
    )


if __name__ == "__main__":
    main()
