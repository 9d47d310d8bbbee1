"""Sample-ratio mismatch: exact chi-square tails, and when the alarm may sound."""

from __future__ import annotations

import pytest

from config.srm import chi_square_survival, sample_ratio


@pytest.mark.parametrize(
    ("x", "dof", "expected"),  # reference values from scipy.stats.chi2.sf
    [
        (0.5, 1, 0.47950012218695337),
        (3.84, 1, 0.05004352124870519),
        (10.83, 1, 0.0009986863791802592),
        (5.99, 2, 0.05003662708658629),
        (20.0, 3, 0.00016974243555282632),
        (100.0, 1, 1.5239706048320995e-23),
        (1.0, 4, 0.9097959895689501),
        (0.01, 2, 0.9950124791926823),
    ],
)
def test_chi_square_tail(x: float, dof: int, expected: float) -> None:
    assert chi_square_survival(x, dof) == pytest.approx(expected, rel=1e-9)


def test_a_split_that_matches_its_weights_passes() -> None:
    result = sample_ratio({"stable": 9010, "canary": 990}, {"stable": 90, "canary": 10})
    assert result.p_value is not None and result.p_value > 0.5
    assert not result.mismatch


def test_a_broken_split_is_flagged() -> None:
    result = sample_ratio({"stable": 8500, "canary": 1500}, {"stable": 90, "canary": 10})
    assert result.mismatch and result.p_value is not None and result.p_value < 1e-50


def test_traffic_on_a_zero_weight_track_is_a_mismatch() -> None:
    assert sample_ratio({"stable": 500, "canary": 1}, {"stable": 100, "canary": 0}).mismatch


def test_too_few_requests_is_no_verdict() -> None:
    result = sample_ratio({"stable": 50, "canary": 40}, {"stable": 90, "canary": 10})
    assert (result.p_value, result.mismatch) == (None, False)
