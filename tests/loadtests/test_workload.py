"""Conversations: pooled users, growing history, the streaming share and prompt sizes."""

from __future__ import annotations

import random

from loadtests.workload import PROMPT_SIZES, Workload


def workload(seed: int = 1, **overrides: object) -> Workload:
    options: dict[str, object] = {
        "model": "m",
        "stream_share": 0.5,
        "user_pool": 20,
        "user_prefix": "u-",
        "prompt_mix": {"short": 1, "medium": 1, "long": 1},
        "turns": (2, 4),
        "max_tokens": 64,
    }
    options.update(overrides)
    return Workload(random.Random(seed), **options)  # type: ignore[arg-type]


def test_a_conversation_carries_its_history() -> None:
    w = workload()
    conversation = w.conversation()
    assert conversation.user.startswith("u-") and 0 <= int(conversation.user[2:]) < 20
    assert 2 <= conversation.turns_left <= 4
    first = w.turn(conversation)
    conversation.answered("an answer")
    second = w.turn(conversation)
    assert [m["role"] for m in second.body["messages"]] == ["system", "user", "assistant", "user"]
    assert len(first.body["messages"]) == 2
    assert second.body["user"] == conversation.user
    assert second.body["model"] == "m" and second.body["max_tokens"] == 64


def test_prompt_sizes_and_stream_share_follow_the_settings() -> None:
    w = workload(stream_share=1.0, prompt_mix={"long": 1})
    conversation = w.conversation()
    turn = w.turn(conversation)
    assert turn.stream and turn.body["stream"] and turn.body["stream_options"]["include_usage"]
    low, high = PROMPT_SIZES["long"]
    assert low <= len(turn.body["messages"][-1]["content"].split()) <= high
    assert turn.size == "long"
    assert not workload(stream_share=0.0).turn(conversation).stream


def test_users_come_back_from_the_pool() -> None:
    w = workload(user_pool=5)
    seen = [w.conversation().user for _ in range(50)]
    assert len(set(seen)) <= 5 < len(seen)


def test_a_seed_replays_the_same_workload() -> None:
    a, b = workload(seed=3), workload(seed=3)
    ca, cb = a.conversation(), b.conversation()
    assert ca.user == cb.user
    assert a.turn(ca).body["messages"] == b.turn(cb).body["messages"]
