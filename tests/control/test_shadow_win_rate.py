"""``shadow_win_rate``: the share of judged shadow pairs the shadow won, ties counting half,
as a threshold parses it, as the verdict judges it, and as a window's summary shows it."""

from __future__ import annotations

import pytest

from config.checks import PostDeploy
from config.metrics import TrackWindow, merge_windows, shadow_arm, shadow_field_name
from config.shadow import VERDICT_FIELDS
from config.thresholds import parse_condition, parse_threshold
from control.analysis.verdict import Verdict, assess, breached, measure


def judged(better: int = 0, worse: int = 0, same: int = 0) -> TrackWindow:
    """The shadow arm's window after these verdicts, read as the control plane reads it."""
    fields = {
        shadow_field_name("canary", "v2", VERDICT_FIELDS[verdict]): str(count)
        for verdict, count in (("better", better), ("worse", worse), ("same", same))
        if count
    }
    return merge_windows([fields], shadow=True).get((shadow_arm("canary"), "v2"), TrackWindow())


def check(text: str, window: TrackWindow | None) -> tuple[Verdict, str]:
    a = assess("shadow_win_rate", parse_threshold(text, "shadow_win_rate"), window, 0.95)
    assert a.unit == "%" and not a.reason.startswith("shadow_win_rate")
    return a.verdict, a.reason


@pytest.mark.parametrize(
    ("text", "window", "verdict"),
    [
        ("> 45%", judged(better=80, same=20), Verdict.PASS),
        ("> 45%", judged(better=5, worse=95), Verdict.FAIL),
        ("> 45%", judged(better=3, worse=2), Verdict.INCONCLUSIVE),
        ("> 45%", judged(), Verdict.INCONCLUSIVE),  # nothing judged is never a pass
        ("> 45%", None, Verdict.ERROR),
        ("< 20%", judged(worse=100), Verdict.PASS),
        # Ties count half: 200 ties are 50 %, and shown so, since ties do not spread.
        ("> 45%", judged(same=200), Verdict.PASS),
        ("> 55%", judged(same=200), Verdict.FAIL),
        # The same 50 % from wins and losses spreads: 200 pairs do not show it yet.
        ("> 45%", judged(better=100, worse=100), Verdict.INCONCLUSIVE),
    ],
)
def test_assess(text: str, window: TrackWindow | None, verdict: Verdict) -> None:
    assert check(text, window)[0] is verdict


def test_ties_count_half() -> None:
    assert measure("shadow_win_rate", judged(better=1, worse=2, same=1)) == (0.375, 4)
    assert measure("shadow_win_rate", judged(same=7)) == (0.5, 7)
    assert measure("shadow_win_rate", judged()) == (None, 0)
    # Live feedback is not a verdict on a pair.
    live = TrackWindow(feedback={"rating_n": 3, "rating_sum": 12, "hallucination_no": 5})
    assert measure("shadow_win_rate", live) == (None, 0)


def test_the_figures_are_percentages_over_judged_pairs() -> None:
    verdict, reason = check("> 45%", judged(better=80, same=20))
    assert verdict is Verdict.PASS
    assert reason.startswith("90 % (lower bound ") and reason.endswith(
        "over 100 judged pairs, above 45 %"
    )
    assert check("> 45%", judged())[1] == "no judged pairs yet"


def test_an_inconclusive_look_says_how_many_more_pairs() -> None:
    a = assess("shadow_win_rate", parse_threshold("> 45%", "shadow_win_rate"), judged(3, 2), 0.95)
    assert a.verdict is Verdict.INCONCLUSIVE and a.needed is not None
    assert "more judged pairs at this rate" in a.reason
    scale = (5 + a.needed) / 5
    more = judged(better=round(3 * scale) + 1, worse=round(2 * scale))
    assert check("> 45%", more)[0] is Verdict.PASS


def test_a_rollback_condition() -> None:
    condition = parse_condition("shadow_win_rate < 30%")
    assert condition.threshold.value == pytest.approx(0.3)
    hit = breached(condition.metric, condition.threshold, judged(worse=100), 0.95)
    assert hit.verdict is Verdict.FAIL and hit.reason.endswith("below 30 %: roll back")
    fine = breached(condition.metric, condition.threshold, judged(better=50, same=50), 0.95)
    assert fine.verdict is Verdict.PASS


def test_thresholds_are_percentages() -> None:
    assert parse_threshold("> 45%", "shadow_win_rate").value == pytest.approx(0.45)
    with pytest.raises(ValueError, match="percentage"):
        parse_threshold("> 0.45", "shadow_win_rate")
    with pytest.raises(ValueError, match="between 0% and 100%"):
        parse_threshold("> 145%", "shadow_win_rate")


def test_the_summary_shows_the_win_rate_and_the_pairs_judged() -> None:
    summary = judged(better=1, worse=2, same=1).summary()
    assert (summary["shadow_win_rate"], summary["shadow_judged"]) == (0.375, 4)
    empty = TrackWindow().summary()
    assert (empty["shadow_win_rate"], empty["shadow_judged"]) == (None, 0)


def test_a_post_deploy_check_cannot_judge_it() -> None:
    """A promoted version gets no shadow copies: the criterion could never be judged."""
    with pytest.raises(ValueError, match="shadow_win_rate: measured on shadow copies"):
        PostDeploy(criteria={"shadow_win_rate": "> 45%"})
