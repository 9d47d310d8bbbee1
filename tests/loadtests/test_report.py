"""The end-of-run report's text."""

from __future__ import annotations

from loadtests.report import render, table
from loadtests.tally import Epoch, Outcome, Tally
from loadtests.verdict import Rules, judge

G1 = Epoch("generation", 1)


def test_table_aligns_columns() -> None:
    assert table(("track", "turns"), [["stable", "9"], ["canary", "10"]]).splitlines() == [
        "track   turns",
        "------  -----",
        "stable      9",
        "canary     10",
    ]


def test_a_rollout_report_has_phases_a_timeline_and_reasons() -> None:
    tally = Tally()
    tally.record(Outcome("u1", "stable", G1, "before the rollout", True, 400.0, 20.0))
    tally.record(Outcome("u2", "canary", G1, "phase 1: 5%", False, 30.0))
    tally.record(Outcome("u2", "stable", G1, "phase 1: 5%", False, 30.0))
    tally.record(Outcome("u3", None, G1, "phase 1: 5%", False, 1.0, None, "connect"))
    rules = Rules()
    verdict = judge(tally, lambda epoch: {"stable": 95, "canary": 5}, rules)

    text = render(tally, verdict, rules, [(1.5, "phase 1: 5%")])

    lines = text.splitlines()
    assert "=== per rollout phase ===" in lines
    assert "[phase 1: 5%]" in lines
    assert "  +    1.5 s  phase 1: 5%" in lines
    overall = lines[lines.index("=== splitgate load test: per track ===") + 3 :][:4]
    assert [line.split()[:4] for line in overall] == [
        ["canary", "1", "0", "0.00"],
        ["stable", "2", "0", "0.00"],
        ["(none)", "1", "1", "100.00"],
        ["all", "4", "1", "25.00"],
    ]
    assert "not judged: fewer than 200 users" in text
    assert "stickiness violations: 1" in lines
    assert "  user 'u2' on canary and stable under generation 1" in lines
    assert "RESULT: FAIL" in lines
    assert any(line.startswith("  - 25.00 % of 4 turns failed") for line in lines)


def test_without_expected_weights_the_split_is_only_shown() -> None:
    tally = Tally()
    tally.record(Outcome("u1", "stable", G1, "whole run", False, 10.0))
    verdict = judge(tally, lambda epoch: None, Rules())
    text = render(tally, verdict, Rules())
    assert "generation 1: stable 100.0 % of 1 users (no expected weights: not judged)" in text
    assert "=== per rollout phase ===" not in text
    assert text.rstrip().endswith("RESULT: PASS")
