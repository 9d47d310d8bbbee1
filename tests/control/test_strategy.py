"""The runner's strategy factory: every stored kind has a strategy, an unknown one is refused."""

from __future__ import annotations

from typing import get_args

import pytest

from config.records import Strategy as StoredKind
from control.strategy import Strategies, UnknownStrategy
from tests.control.rollout_bench import Bench


def test_every_kind_a_record_may_name_has_a_strategy(bench: Bench) -> None:
    strategies = Strategies(bench.rollouts._prep, bench.rollouts._observer, bench.windows)
    for kind in get_args(StoredKind):
        assert strategies(kind) is not None
    with pytest.raises(
        UnknownStrategy, match=r"unknown strategy 'shadow' \(known: ab_test, big_bang"
    ):
        strategies("shadow")
