"""Threshold verdicts, table-driven: pass, fail, inconclusive on thin data, error without data."""

from __future__ import annotations

import pytest

from config.metrics import BUCKETS, TrackWindow, bucket_index_ms
from config.thresholds import parse_condition, parse_threshold
from control.analysis.verdict import Verdict, assess, breached


def window(
    requests: int = 0, errors: int = 0, latency_ms: float = 100.0, **feedback: int
) -> TrackWindow:
    w = TrackWindow(requests=requests)
    w.errors["upstream_5xx"] = errors
    w.latency = [0] * BUCKETS
    w.latency[bucket_index_ms(latency_ms)] = requests
    w.feedback = dict(feedback)
    return w


@pytest.mark.parametrize(
    ("metric", "threshold", "w", "verdict"),
    [
        ("error_rate", "< 1%", window(1000, 5), Verdict.PASS),
        ("error_rate", "< 1%", window(1000, 20), Verdict.FAIL),
        ("error_rate", "< 1%", window(10, 5), Verdict.INCONCLUSIVE),  # too few requests
        ("error_rate", "< 1%", window(0), Verdict.INCONCLUSIVE),  # no traffic is never a pass
        ("error_rate", "< 1%", None, Verdict.ERROR),  # no metrics is never a failure
        ("latency_p95", "< 2000ms", window(500, latency_ms=800), Verdict.PASS),
        ("latency_p95", "< 2000ms", window(500, latency_ms=2500), Verdict.FAIL),
        (
            "hallucination_rate",
            "< 5%",
            window(500, hallucination_yes=1, hallucination_no=99),
            Verdict.PASS,
        ),
        (
            "hallucination_rate",
            "< 5%",
            window(500, hallucination_yes=10, hallucination_no=90),
            Verdict.FAIL,
        ),
        ("user_satisfaction", "> 4.0/5.0", window(500, rating_sum=450, rating_n=100), Verdict.PASS),
        ("user_satisfaction", "> 4.0/5.0", window(500, rating_sum=300, rating_n=100), Verdict.FAIL),
        (
            "user_satisfaction",
            "> 4.0/5.0",
            window(500, rating_sum=50, rating_n=10),
            Verdict.INCONCLUSIVE,
        ),
    ],
)
def test_assess(metric: str, threshold: str, w: TrackWindow | None, verdict: Verdict) -> None:
    result = assess(
        metric,
        parse_threshold(threshold, metric),
        w,
        minimum=100 if "rate" in metric or "latency" in metric else 30,
    )
    assert result.verdict is verdict, result


def test_rollback_conditions() -> None:
    condition = parse_condition("error_rate > 5%")
    assert (
        breached(condition.metric, condition.threshold, window(1000, 80), 100).verdict
        is Verdict.FAIL
    )
    assert (
        breached(condition.metric, condition.threshold, window(1000, 10), 100).verdict
        is Verdict.PASS
    )
    assert (
        breached(condition.metric, condition.threshold, window(50, 40), 100).verdict
        is Verdict.INCONCLUSIVE
    )
    result = breached(condition.metric, condition.threshold, window(1000, 80), 100)
    assert (result.value, result.sample) == (0.08, 1000) and "roll back" in result.reason


def test_the_minimum_sample_follows_the_threshold_the_confidence_and_the_effect() -> None:
    from config.thresholds import parse_threshold
    from control.analysis.verdict import min_sample

    def needed(metric: str, text: str, confidence: float = 0.95, effect: float = 0.5) -> int:
        return min_sample(metric, parse_threshold(text, metric), confidence, effect, 100)

    # 1 % must be told from 1.5 % at 95 %: 1.645² · 0.01 · 0.99 / 0.005² ≈ 1,072.
    assert 1060 <= needed("error_rate", "< 1%") <= 1080
    assert needed("error_rate", "< 1%", confidence=0.99) > needed("error_rate", "< 1%")
    assert needed("error_rate", "< 1%", effect=1.0) < needed("error_rate", "< 1%")
    assert needed("error_rate", "> 20%") == 100  # a coarse condition needs only the floor
    assert 200 <= needed("latency_p95", "< 2000ms") <= 210
    assert needed("user_satisfaction", "> 4.0/5.0") == 100
