"""``--workers N`` / ``SPLITGATE_WORKERS``: validation, and the supervisor's restart budget."""

from __future__ import annotations

import pytest

from config.loader import ConfigError
from proxy.settings import MAX_WORKERS, from_args, parse_workers
from proxy.supervisor import RestartBudget

INLINE = ["--upstream", "a=http://127.0.0.1:1"]


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("4", 4), (" 2 ", 2), ("64", 64)])
def test_worker_counts(value: str, expected: int) -> None:
    assert parse_workers(value, reuse_port=True) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "must be between 1 and 64"),
        (str(MAX_WORKERS + 1), "must be between 1 and 64"),
        ("-1", "expected a whole number of processes"),
        ("2.5", "expected a whole number of processes"),
        ("two", "expected a whole number of processes"),
        ("", "expected a whole number of processes"),
        ("1_0", "expected a whole number of processes"),
        ("\uff12", "expected a whole number of processes"),  # a full-width 2
    ],
)
def test_bad_worker_counts_say_the_value_and_the_reason(value: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_workers(value, reuse_port=True)
    assert str(caught.value) == f"{value!r}: {reason}"


def test_several_workers_need_so_reuseport() -> None:
    assert parse_workers("1", reuse_port=False) == 1
    with pytest.raises(ValueError, match=r"'2': .*SO_REUSEPORT, which this platform"):
        parse_workers("2", reuse_port=False)


def test_flag_wins_over_environment_and_default_is_one() -> None:
    assert from_args(INLINE, {}).workers == 1
    assert from_args(INLINE, {"SPLITGATE_WORKERS": "3"}).workers == 3
    assert from_args([*INLINE, "--workers", "2"], {"SPLITGATE_WORKERS": "3"}).workers == 2
    assert from_args(INLINE, {"SPLITGATE_WORKERS": ""}).workers == 1


def test_errors_name_where_the_value_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^SPLITGATE_WORKERS: 'lots': expected a whole"):
        from_args(INLINE, {"SPLITGATE_WORKERS": "lots"})
    with pytest.raises(ConfigError, match=r"^--workers: '0': must be between 1 and 64"):
        from_args([*INLINE, "--workers", "0"], {"SPLITGATE_WORKERS": "2"})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_restart_budget_allows_a_limited_number_per_window() -> None:
    clock = Clock()
    budget = RestartBudget(limit=5, window_s=60, clock=clock)
    for _ in range(5):
        clock.now += 1
        assert budget.spend()
    assert not budget.spend()  # the sixth within a minute
    clock.now += 56  # the first restart (at 1001) is now 60 s old
    assert budget.spend()
    assert not budget.spend()


def test_a_refused_restart_does_not_use_up_the_budget() -> None:
    clock = Clock()
    budget = RestartBudget(limit=1, window_s=10, clock=clock)
    assert budget.spend()
    for _ in range(5):
        assert not budget.spend()
    clock.now += 10
    assert budget.spend()
