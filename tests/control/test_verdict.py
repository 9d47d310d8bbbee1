"""Threshold verdicts on evidence, table-driven: pass, fail, inconclusive, error, with figures."""

from __future__ import annotations

import pytest

from config.metrics import TrackWindow, bucket_index_ms
from config.thresholds import parse_condition, parse_threshold
from control.analysis.verdict import Assessment, Verdict, assess, breached


def window(
    requests: int = 0,
    errors: int = 0,
    latency_ms: float = 100.0,
    slow: int = 0,
    slow_ms: float = 2500.0,
    **feedback: int,
) -> TrackWindow:
    """``requests`` at ``latency_ms``, ``slow`` of them at ``slow_ms`` instead."""
    w = TrackWindow(requests=requests)
    w.errors["upstream_5xx"] = errors
    w.latency[bucket_index_ms(latency_ms)] += requests - slow
    w.latency[bucket_index_ms(slow_ms)] += slow
    w.feedback = dict(feedback)
    return w


def check(metric: str, text: str, w: TrackWindow | None, confidence: float = 0.95) -> Assessment:
    return assess(metric, parse_threshold(text, metric), w, confidence)


@pytest.mark.parametrize(
    ("metric", "threshold", "w", "verdict"),
    [
        ("error_rate", "< 1%", window(1000, 1), Verdict.PASS),
        ("error_rate", "< 1%", window(400, 0), Verdict.PASS),  # rule of three, not 1,072
        ("error_rate", "< 1%", window(250, 0), Verdict.INCONCLUSIVE),
        ("error_rate", "< 1%", window(1000, 25), Verdict.FAIL),
        ("error_rate", "< 1%", window(10, 5), Verdict.FAIL),  # half failing: plain already
        ("error_rate", "< 1%", window(100, 1), Verdict.INCONCLUSIVE),
        ("error_rate", "< 1%", window(0), Verdict.INCONCLUSIVE),  # no traffic is never a pass
        ("error_rate", "< 1%", None, Verdict.ERROR),  # no metrics is never a failure
        ("latency_p95", "< 2000ms", window(500, latency_ms=800), Verdict.PASS),
        ("latency_p95", "< 2000ms", window(500, latency_ms=2500), Verdict.FAIL),
        ("latency_p95", "< 2000ms", window(30, latency_ms=800), Verdict.INCONCLUSIVE),
        ("latency_p95", "< 2000ms", window(500, latency_ms=800, slow=100), Verdict.FAIL),
        # 6 % in the bucket that straddles 2,000 ms (1,722–2,048): they count as slow for a
        # pass and as fast for a fail, so neither can be shown.
        (
            "latency_p95",
            "< 2000ms",
            window(5000, latency_ms=800, slow=300, slow_ms=1900),
            Verdict.INCONCLUSIVE,
        ),
        ("ttfb_p50", "< 500ms", window(200, latency_ms=100), Verdict.INCONCLUSIVE),  # no ttfb
        (
            "hallucination_rate",
            "< 5%",
            window(0, hallucination_yes=1, hallucination_no=299),
            Verdict.PASS,
        ),
        (
            "hallucination_rate",
            "< 5%",
            window(0, hallucination_yes=30, hallucination_no=170),
            Verdict.FAIL,
        ),
        (
            "hallucination_rate",
            "< 5%",
            window(0, hallucination_yes=1, hallucination_no=99),
            Verdict.INCONCLUSIVE,
        ),
        (
            "user_satisfaction",
            "> 4.0/5.0",
            window(0, rating_sum=450, rating_sq=2100, rating_n=100),
            Verdict.PASS,
        ),
        (
            "user_satisfaction",
            "> 4.0/5.0",
            window(0, rating_sum=300, rating_sq=1000, rating_n=100),
            Verdict.FAIL,
        ),
        (
            "user_satisfaction",
            "> 4.0/5.0",
            window(0, rating_sum=45, rating_sq=210, rating_n=10),
            Verdict.INCONCLUSIVE,
        ),
    ],
)
def test_assess(metric: str, threshold: str, w: TrackWindow | None, verdict: Verdict) -> None:
    result = check(metric, threshold, w)
    assert result.verdict is verdict, result
    assert not result.reason.startswith(metric)
    if verdict is not Verdict.INCONCLUSIVE:
        assert result.needed is None


def test_the_figures_come_with_their_units() -> None:
    a = check("error_rate", "< 1%", window(412, 0))
    assert (a.verdict, a.value, a.sample, a.unit) == (Verdict.PASS, 0.0, 412, "%")
    assert a.bound is not None and 0 < a.bound < 0.01
    assert a.reason == f"0 % (upper bound {a.bound * 100:.2f} %) over 412 requests, below 1 %"
    f = check("error_rate", "< 1%", window(1000, 25))
    assert f.bound is not None and 0.01 < f.bound < 0.025
    assert f.reason.startswith("2.5 % (lower bound 1.") and f.reason.endswith("above 1 %")
    lat = check("latency_p95", "< 2000ms", window(500, latency_ms=800))
    assert lat.unit == "ms" and lat.bound == lat.value == 861.078
    assert lat.reason == "861 ms (upper bound 861 ms) over 500 requests, below 2000 ms"
    score = check(
        "user_satisfaction", "> 4.0/5.0", window(0, rating_sum=450, rating_sq=2100, rating_n=100)
    )
    assert score.unit == "/5" and score.bound is not None and 4.0 < score.bound < 4.5
    assert score.reason.startswith("4.5/5 (lower bound 4.") and "over 100 ratings" in score.reason


def test_an_inconclusive_check_says_how_many_more_samples_it_needs() -> None:
    a = check("error_rate", "< 1%", window(250, 0))
    assert a.verdict is Verdict.INCONCLUSIVE and a.needed is not None
    assert check("error_rate", "< 1%", window(250 + a.needed, 0)).verdict is Verdict.PASS
    assert "more requests at this rate" in a.reason
    # The rate sits on the threshold: more of the same decides nothing.
    assert check("error_rate", "< 1%", window(100, 1)).needed is None
    assert check("error_rate", "< 1%", window(0)).needed is None
    straddling = check(
        "latency_p95", "< 2000ms", window(5000, latency_ms=800, slow=300, slow_ms=1900)
    )
    assert straddling.needed is None


def test_confidence_sets_how_much_evidence_a_verdict_needs() -> None:
    assert check("error_rate", "< 1%", window(400, 0), 0.95).verdict is Verdict.PASS
    assert check("error_rate", "< 1%", window(400, 0), 0.99).verdict is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="confidence"):
        check("error_rate", "< 1%", window(400, 0), 100)


def test_latency_bounds_are_bucket_edges() -> None:
    slow = check("latency_p95", "< 2000ms", window(500, latency_ms=800, slow=100))
    assert slow.value == 2896.309 and slow.bound == 2435.496  # p95 above the 2,435 ms edge
    assert slow.reason.endswith("above 2000 ms")


@pytest.mark.parametrize(
    ("w", "verdict", "ending"),
    [
        (window(1000, 80), Verdict.FAIL, "above 5 %: roll back"),
        (window(1000, 10), Verdict.PASS, "below 5 %"),
        (window(50, 4), Verdict.PASS, "not shown above 5 %"),  # 8 % of 50 proves nothing
        (window(100, 30), Verdict.FAIL, "above 5 %: roll back"),
        (window(0), Verdict.INCONCLUSIVE, "no requests yet"),
        (None, Verdict.ERROR, "the store did not answer"),
    ],
)
def test_rollback_conditions(w: TrackWindow | None, verdict: Verdict, ending: str) -> None:
    condition = parse_condition("error_rate > 5%")
    result = breached(condition.metric, condition.threshold, w, 0.95)
    assert result.verdict is verdict and result.reason.endswith(ending), result
    assert result.needed is None


def test_latency_rollback_condition() -> None:
    condition = parse_condition("latency_p95 > 3000ms")
    hit = breached(
        condition.metric,
        condition.threshold,
        window(100, latency_ms=800, slow=20, slow_ms=5000),
        0.95,
    )
    assert hit.verdict is Verdict.FAIL and hit.bound is not None and hit.bound > 3000
    fine = breached(condition.metric, condition.threshold, window(100, latency_ms=800), 0.95)
    assert fine.verdict is Verdict.PASS and fine.reason.endswith("below 3000 ms")


def test_a_design_effect_asks_for_more_evidence() -> None:
    threshold = parse_threshold("< 1%", "error_rate")
    plain = assess("error_rate", threshold, window(400, 0), 0.95)
    clustered = assess("error_rate", threshold, window(400, 0), 0.95, design_effect=4.0)
    assert (plain.verdict, clustered.verdict) == (Verdict.PASS, Verdict.INCONCLUSIVE)
    assert clustered.needed is not None and clustered.needed > 400
