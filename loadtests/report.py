"""The end-of-run report: per-track and per-phase tables, the split, stickiness, the verdict."""

from __future__ import annotations

from collections.abc import Sequence

from loadtests.tally import NO_TRACK, Tally, TrackStats, merged
from loadtests.verdict import Rules, SplitCheck, Verdict

STATS_HEADER = (
    "turns",
    "failed",
    "error %",
    "share",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "TTFT p50",
    "TTFT p95",
)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ms(value: int | None) -> str:
    return "-" if value is None else str(value)


def stats_row(name: str, stats: TrackStats, total: int) -> list[str]:
    return [
        name,
        str(stats.requests),
        str(stats.failures),
        f"{100 * stats.error_share:.2f}",
        f"{100 * stats.requests / total:.1f} %" if total else "-",
        _ms(stats.latency.percentile(0.5)),
        _ms(stats.latency.percentile(0.95)),
        _ms(stats.latency.percentile(0.99)),
        _ms(stats.ttft.percentile(0.5)),
        _ms(stats.ttft.percentile(0.95)),
    ]


def track_table(tracks: dict[str, TrackStats]) -> str:
    total = merged(tracks.values())
    names = sorted(tracks, key=lambda t: (t == NO_TRACK, t))
    rows = [stats_row(name, tracks[name], total.requests) for name in names]
    rows.append(stats_row("all", total, total.requests))
    return table(("track", *STATS_HEADER), rows)


def split_line(check: SplitCheck, rules: Rules) -> str:
    if not check.judged:
        state = f"not judged: fewer than {rules.split_min_users} users"
    elif check.off:
        state = f"OFF: {', '.join(check.off)}"
    elif check.unclear:
        state = f"ok: {', '.join(check.unclear)} off by more than the tolerance, but within chance"
    else:
        state = "ok"
    return f"  {check.describe(rules.split_tolerance)} — {state}"


def render(
    tally: Tally,
    verdict: Verdict,
    rules: Rules,
    timeline: Sequence[tuple[float, str]] = (),
) -> str:
    out = ["", "=== splitgate load test: per track ===", track_table(tally.tracks)]
    if len(tally.phases) > 1 or timeline:
        out += ["", "=== per rollout phase ==="]
        for phase, tracks in tally.phases.items():
            out += ["", f"[{phase}]", track_table(tracks)]
        if timeline:
            out += ["", "timeline:", *(f"  +{at:7.1f} s  {what}" for at, what in timeline)]
    out += ["", "=== split of distinct users by routing epoch ==="]
    if verdict.splits:
        out += [split_line(check, rules) for check in verdict.splits]
    else:
        for epoch, sightings in sorted(tally.epochs.items()):
            users = sightings.users()
            n = sum(users.values())
            shares = ", ".join(f"{t} {100 * c / n:.1f} %" for t, c in sorted(users.items()))
            out.append(f"  {epoch}: {shares} of {n} users (no expected weights: not judged)")
    violations = tally.violations()
    out += ["", f"stickiness violations: {len(violations)}"]
    out += [f"  {v}" for v in violations[:10]]
    if verdict.reasons:
        out += ["", "RESULT: FAIL", *(f"  - {reason}" for reason in verdict.reasons)]
    else:
        out += ["", "RESULT: PASS"]
    return "\n".join(out) + "\n"
