"""The decision log's buffer: inactive until a writer drains it, every n-th decision and every
unusual one kept, bounded by the budget with drops counted."""

from __future__ import annotations

from config.decisions import DecisionLogSettings
from proxy.decisions import DecisionLog
from tests.proxy.decision_table import finished, route


def test_an_inactive_log_keeps_nothing() -> None:
    chat = route()
    log = DecisionLog(DecisionLogSettings(sample_percent=100))
    for i in range(10):
        log.note(finished(chat, f"n{i}", flag=True), chat, True, "u")
    assert not log.active and log.drain() == [] and log.dropped == 0


def test_a_disabled_log_stays_inactive() -> None:
    log = DecisionLog(DecisionLogSettings(enabled=False))
    log.activate()
    assert not log.active


def test_every_nth_weighted_decision_is_kept_and_unusual_ones_always() -> None:
    chat = route()
    log = DecisionLog(DecisionLogSettings(sample_percent=1, max_per_second=1000))
    log.activate()
    for i in range(300):
        log.note(finished(chat, f"w{i}"), chat, False, f"user-{i}")
    kept = log.drain()
    assert [e[0] for e in kept] == ["w99", "w199", "w299"]
    log = DecisionLog(DecisionLogSettings(sample_percent=0.07, max_per_second=1000))
    log.activate()
    exchange = finished(chat, "w")
    for _ in range(100_000):
        log.note(exchange, chat, False, None)
    assert len(log.drain()) == 70
    unusual = [
        finished(chat, "flag", chosen="canary", flag=True),
        finished(chat, "forced", chosen="canary"),
        finished(chat, "fallback", chosen="canary", answered="stable"),
        finished(chat, "failed", error="upstream_5xx"),
    ]
    for exchange in unusual:
        log.note(exchange, chat, exchange.nonce == "forced", "u")
    assert [e[0] for e in log.drain()] == ["flag", "forced", "fallback", "failed"]


def test_unusual_decisions_are_sampled_like_the_rest_without_keep_unusual() -> None:
    chat = route()
    log = DecisionLog(DecisionLogSettings(sample_percent=50, keep_unusual=False))
    log.activate()
    for i in range(4):
        log.note(finished(chat, f"f{i}", flag=True), chat, False, "u")
    assert [e[0] for e in log.drain()] == ["f1", "f3"]


def test_the_entry_holds_the_decision_and_not_the_exchange() -> None:
    chat = route()
    log = DecisionLog(DecisionLogSettings(sample_percent=100))
    log.activate()
    exchange = finished(chat, "n1", client_id="client-7", started=12.5)
    log.note(exchange, chat, False, "alice")
    (entry,) = log.drain()
    assert entry == (
        "n1",
        "client-7",
        chat,
        chat.tracks["stable"],
        chat.tracks["stable"],
        None,
        False,
        "alice",
        7,
        12.5,
        None,
        None,
    )


def test_the_budget_bounds_what_waits_and_counts_the_drops() -> None:
    chat = route()
    log = DecisionLog(DecisionLogSettings(sample_percent=100, max_per_second=5))
    log.activate()
    for i in range(12):
        log.note(finished(chat, f"a{i}"), chat, False, None)
    assert len(log.drain()) == 5 and log.dropped == 7
    log.note(finished(chat, "b"), chat, False, None)  # the drain renewed the budget
    assert [e[0] for e in log.drain()] == ["b"] and log.dropped == 7
