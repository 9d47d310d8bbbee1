"""The conversation's sticky key from a request body: the same on every turn, pinned."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.conversation import SCAN_FROM, conversation_key, key_of

SYSTEM = {"role": "system", "content": "You are a terse assistant."}
FIRST = {"role": "user", "content": "What is a canary release?"}


def chat(*messages: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": list(messages), **fields}).encode()


def turns() -> list[bytes]:
    """Three turns of one conversation, each re-sending the history from its start."""
    history: list[dict[str, Any]] = [SYSTEM, FIRST]
    bodies = [chat(*history)]
    for n in (1, 2):
        history += [
            {"role": "assistant", "content": f"answer {n}"},
            {"role": "user", "content": f"follow-up {n}"},
        ]
        bodies.append(chat(*history, stream=n == 2, temperature=0.2 * n))
    return bodies


def test_every_turn_of_a_conversation_has_the_same_key() -> None:
    keys = {conversation_key(body) for body in turns()}
    assert len(keys) == 1 and None not in keys


def test_a_different_opening_is_a_different_conversation() -> None:
    base = conversation_key(chat(SYSTEM, FIRST))
    assert conversation_key(chat(SYSTEM, {"role": "user", "content": "Hi"})) != base
    other_system = {"role": "system", "content": "You are verbose."}
    assert conversation_key(chat(other_system, FIRST)) != base
    assert conversation_key(chat(FIRST)) != base  # no system prompt at all


def test_instructions_after_the_first_user_message_do_not_change_the_key() -> None:
    late = {"role": "system", "content": "Context injected later."}
    assert conversation_key(chat(SYSTEM, FIRST, late)) == conversation_key(chat(SYSTEM, FIRST))


def test_developer_messages_count_as_instructions() -> None:
    developer = {"role": "developer", "content": SYSTEM["content"]}
    assert conversation_key(chat(developer, FIRST)) == conversation_key(chat(SYSTEM, FIRST))


def test_content_parts_read_as_their_text() -> None:
    parts = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is a "},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "text", "text": "canary release?"},
        ],
    }
    assert conversation_key(chat(SYSTEM, parts)) == conversation_key(chat(SYSTEM, FIRST))


def test_pieces_are_length_prefixed() -> None:
    # Moving text between the system prompt and the first message is another conversation.
    one = chat({"role": "system", "content": "ab"}, {"role": "user", "content": "c"})
    two = chat({"role": "system", "content": "a"}, {"role": "user", "content": "bc"})
    assert conversation_key(one) != conversation_key(two)


def test_responses_api_input_and_instructions() -> None:
    as_text = json.dumps({"model": "m", "instructions": SYSTEM["content"], "input": "Hi"})
    as_items = json.dumps(
        {
            "model": "m",
            "instructions": SYSTEM["content"],
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
                {"type": "message", "role": "assistant", "content": "Hello"},
                {"role": "user", "content": "And then?"},
            ],
        }
    )
    key = conversation_key(as_text.encode())
    assert key is not None and key == conversation_key(as_items.encode())
    assert key == conversation_key(chat(SYSTEM, {"role": "user", "content": "Hi"}))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b"{}",
        b'{"model": "m", "prompt": "completions API"}',
        b'{"messages": "not a list"}',
        b'{"messages": []}',
        b'{"messages": [{"role": "system", "content": "only a system prompt"}]}',
        b'{"messages": [{"role": "user", "content": ""}]}',
        b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
        b'{"messages": [42, {"role": "user", "content": null}]}',
        b'{"input": "next turn", "previous_response_id": "resp_1"}',
        b'{"input": "next turn", "conversation": "conv_1"}',
        b'{"input": 42}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_no_key_without_a_readable_opening(body: bytes) -> None:
    assert conversation_key(body) is None


GOLDEN = [
    # Checked against coreutils: printf '5:hello' | b2sum -l 128
    (chat({"role": "user", "content": "hello"}), "4a6f1c2724afb40142500a578df37b68"),
    (chat(SYSTEM, FIRST), "c787ec30192ab20655565ce8ab8b35a2"),
    (
        chat(
            {"role": "system", "content": "Réponds en français."},
            {"role": "user", "content": "Ça va ?"},
        ),
        "a3cd30089faa9a5a20505c5d640d9ed3",  # byte lengths, not characters
    ),
]


@pytest.mark.parametrize(("body", "expected"), GOLDEN)
def test_golden_keys(body: bytes, expected: str) -> None:
    assert conversation_key(body) == expected


_TEXT = st.text(max_size=20)
_CONTENT = st.one_of(
    st.text(min_size=1, max_size=20),
    st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": _TEXT}), min_size=1),
    st.just(""),
    st.none(),
)
_ROLE_MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]),
        "content": _CONTENT,
    }
)
_MESSAGE = st.one_of(_ROLE_MESSAGE, _ROLE_MESSAGE, _ROLE_MESSAGE, _TEXT, st.integers())
_OPENING = st.builds(
    lambda before, first, rest: [*before, first, *rest],
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["system", "developer", "assistant", "tool"]),
                    "content": _CONTENT,
                }
            ),
            _TEXT,
        ),
        max_size=3,
    ),
    st.fixed_dictionaries({"role": st.just("user"), "content": _CONTENT}),
    st.lists(_MESSAGE, max_size=4),
)
"""Messages with a user message: the ones that have a key."""
_OTHER = st.dictionaries(
    st.sampled_from(["model", "stream", "temperature", "tools", "input", "instructions", "x"]),
    st.one_of(_TEXT, st.integers(), st.booleans(), st.lists(_TEXT, max_size=3)),
    max_size=4,
)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the same patch for all
)
@given(
    before=_OTHER,
    messages=st.one_of(_OPENING, _OPENING, st.lists(_MESSAGE, max_size=6), _TEXT, st.none()),
    after=_OTHER,
    spaces=st.sampled_from(["", " ", "\n  ", "\t"]),
    has_messages=st.booleans(),
)
def test_the_scan_reads_what_a_whole_parse_reads(
    monkeypatch: pytest.MonkeyPatch,
    before: dict[str, Any],
    messages: Any,
    after: dict[str, Any],
    spaces: str,
    has_messages: bool,
) -> None:
    """Reading a chat only up to its first user message gives the key of the whole parse,
    whatever comes before or after ``messages`` and however the JSON is spaced."""
    monkeypatch.setattr("config.conversation.SCAN_FROM", 0)  # scan every body here
    doc = {**before, **({"messages": messages} if has_messages else {}), **after}
    if "messages" in after:
        return  # a repeated key: the documented difference
    for body in (
        json.dumps(doc).encode(),
        json.dumps(doc, indent=spaces or None, ensure_ascii=False).encode(),
        (spaces + json.dumps(doc, separators=(",", ":")) + spaces).encode(),
    ):
        assert conversation_key(body) == key_of(json.loads(body))


def test_a_long_history_after_the_opening_is_not_read() -> None:
    """The scan stops at the first user message: what follows is never decoded (here it is
    not even JSON), where a whole parse would refuse the body."""
    history = b'{"role": "assistant", "content": "' + b"x" * SCAN_FROM + b'"}, '
    opening = b'{"model": "m", "messages": [{"role": "system", "content": "Be brief."},'
    first = b' {"role": "user", "content": "hello"}, '
    body = opening + first + history + b'{"role": "assistant", "content": broken'
    whole = opening + first + history + b'{"role": "assistant", "content": "hi"}]}'
    assert conversation_key(body) == conversation_key(whole) is not None
