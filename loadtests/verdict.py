"""The exit rules: whether a load test run passes, and every reason it does not.

Pure functions over the tallies, so a staging pipeline's gate is unit-tested by tables.

- the share of failed turns over all tracks is above ``Rules.max_error_share``;
- in some routing epoch with known weights and at least ``Rules.split_min_users`` distinct
  users, a track's share of the users is off its weight by more than ``Rules.split_tolerance``
  and by more than chance explains at that many users (``Rules.z`` standard errors), so a
  short run is not failed by the luck of the draw while a gross misrouting still is. Users,
  not requests: a sticky user's requests all land on one track, so they are not independent
  draws;
- any user was answered by two tracks under the same routing epoch (a stickiness violation);
- the rollout scenario ended otherwise than expected, or had not ended;
- nothing was answered, or answers came without ``X-Splitgate-Track`` (not a splitgate proxy),
  or the load test's own code raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from loadtests.expectations import Weights
from loadtests.tally import NO_TRACK, Epoch, EpochSightings, Tally


@dataclass(frozen=True)
class Rules:
    max_error_share: float = 0.01
    split_tolerance: float = 0.02
    """Absolute, as a share: 0.02 is two percentage points."""
    split_min_users: int = 200
    z: float = 3.5
    """Standard errors a deviation must exceed: about 1 in 2000 by chance, per track and epoch."""


@dataclass(frozen=True)
class SplitCheck:
    epoch: Epoch
    users: int
    judged: bool
    """Enough distinct users (``Rules.split_min_users``) to judge at all."""
    expected: Mapping[str, float]
    """Track → share (0–1)."""
    observed: Mapping[str, float]
    """Track → share of the epoch's distinct users."""
    off: tuple[str, ...]
    """Tracks off by more than the tolerance and than chance explains."""
    unclear: tuple[str, ...]
    """Tracks off by more than the tolerance, but within chance at this many users."""

    @property
    def failed(self) -> bool:
        return self.judged and bool(self.off)

    def describe(self, tolerance: float) -> str:
        shares = ", ".join(
            f"{t} {100 * self.observed.get(t, 0):.1f} % (expected {100 * self.expected.get(t, 0):g} %)"
            for t in sorted({*self.expected, *self.observed})
        )
        return f"{self.epoch}: {shares} of {self.users} users, tolerance ±{100 * tolerance:g} pp"


@dataclass(frozen=True)
class RolloutResult:
    expected: str
    """``promoted``, ``rolled_back`` or ``any`` (any final state)."""
    status: str | None
    """The rollout's last status; ``None`` if it never started."""
    detail: str = ""

    def problem(self) -> str | None:
        final = self.status in ("promoted", "rolled_back", "aborted")
        if self.status is None:
            return f"the rollout did not start: {self.detail}"
        if not final:
            return f"the rollout had not ended when the run stopped: {self.status} {self.detail}"
        if self.expected not in ("any", self.status):
            return f"the rollout ended {self.status}, expected {self.expected}: {self.detail}"
        return None


@dataclass(frozen=True)
class Verdict:
    reasons: tuple[str, ...]
    splits: tuple[SplitCheck, ...]

    @property
    def exit_code(self) -> int:
        return 1 if self.reasons else 0


def chance(share: float, users: int, rules: Rules) -> float:
    """How far a track's share of ``users`` may stray from ``share`` by chance alone."""
    return rules.z * math.sqrt(share * (1 - share) / users) if users else math.inf


def check_split(
    epoch: Epoch, sightings: EpochSightings, weights: Weights, rules: Rules
) -> SplitCheck:
    expected = {track: w / 100 for track, w in weights.items()}
    users = sightings.users()
    n = sum(users.values())
    observed = {track: count / n for track, count in users.items()} if n else {}
    off: list[str] = []
    unclear: list[str] = []
    for track in sorted({*expected, *observed}):
        share = expected.get(track, 0.0)
        gap = abs(observed.get(track, 0.0) - share)
        if gap <= rules.split_tolerance + 1e-12:
            continue
        (off if gap > chance(share, n, rules) else unclear).append(track)
    judged = n >= rules.split_min_users
    return SplitCheck(epoch, n, judged, expected, observed, tuple(off), tuple(unclear))


def judge(
    tally: Tally,
    expected: Callable[[Epoch], Weights | None],
    rules: Rules,
    rollout: RolloutResult | None = None,
    exceptions: int = 0,
) -> Verdict:
    reasons: list[str] = []
    total = tally.total()
    if not total.requests:
        reasons.append("no chat turn was made")
    elif total.error_share > rules.max_error_share:
        common = ", ".join(f"{kind} ×{n}" for kind, n in total.errors.most_common(3))
        reasons.append(
            f"{100 * total.error_share:.2f} % of {total.requests} turns failed "
            f"(limit {100 * rules.max_error_share:g} %): {common}"
        )
    untracked = tally.tracks.get(NO_TRACK)
    if untracked is not None and untracked.requests > untracked.failures:
        reasons.append(
            f"{untracked.requests - untracked.failures} answers carried no X-Splitgate-Track "
            "(is the host a splitgate proxy?)"
        )
    splits: list[SplitCheck] = []
    for epoch, sightings in sorted(tally.epochs.items()):
        weights = expected(epoch)
        if weights is not None:
            splits.append(check_split(epoch, sightings, weights, rules))
    reasons.extend(f"split off: {s.describe(rules.split_tolerance)}" for s in splits if s.failed)
    violations = tally.violations()
    if violations:
        shown = "; ".join(str(v) for v in violations[:3])
        more = f" (and {len(violations) - 3} more)" if len(violations) > 3 else ""
        reasons.append(f"{len(violations)} stickiness violations: {shown}{more}")
    if rollout is not None and (problem := rollout.problem()) is not None:
        reasons.append(problem)
    if exceptions:
        reasons.append(f"the load test's own code raised {exceptions} times (see locust's log)")
    return Verdict(tuple(reasons), tuple(splits))
