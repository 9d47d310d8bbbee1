"""Sticky keys: first present source wins; X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest
from multidict import CIMultiDict

from config.stickiness import ClientAddress, compile_sources, sticky_key

SOURCES = compile_sources(["header:x-user-id", "cookie:sid", "client_ip"])
NOBODY = ClientAddress([])


def key(
    headers: dict[str, str], peer: str | None = "10.0.0.7", client: ClientAddress = NOBODY
) -> str | None:
    return sticky_key(SOURCES, CIMultiDict(headers), peer, client)


def test_first_present_source_wins() -> None:
    assert key({"X-User-Id": "alice", "Cookie": "sid=s1"}) == "alice"
    assert key({"Cookie": "theme=dark; sid=s1"}) == "s1"
    assert key({"X-User-Id": ""}) == "10.0.0.7"  # empty counts as absent
    assert key({"Cookie": "sidx=1"}) == "10.0.0.7"


def test_no_source_present() -> None:
    only_header = compile_sources(["header:x-user-id"])
    assert sticky_key(only_header, CIMultiDict(), "10.0.0.7", NOBODY) is None


@pytest.mark.parametrize("cookie", ['sid="unterminated; x=\\', "sid=a\x00b; =bad", ";;;sid"])
def test_malformed_cookie_falls_through_to_the_next_source(cookie: str) -> None:
    assert key({"Cookie": cookie}) == "10.0.0.7"


def test_forwarded_for_is_ignored_from_untrusted_peers() -> None:
    assert key({"X-Forwarded-For": "1.2.3.4"}, peer="198.51.100.1") == "198.51.100.1"


def test_forwarded_for_from_trusted_proxies_gives_rightmost_untrusted_hop() -> None:
    trusted = ClientAddress([ipaddress.ip_network("10.0.0.0/8")])
    assert (
        key({"X-Forwarded-For": "6.6.6.6, 203.0.113.5, 10.0.0.2"}, peer="10.0.0.9", client=trusted)
        == "203.0.113.5"
    )
    assert key({"X-Forwarded-For": "10.0.0.3"}, peer="10.0.0.9", client=trusted) == "10.0.0.9"
    assert key({"X-Forwarded-For": "garbage"}, peer="10.0.0.9", client=trusted) == "garbage"
    assert key({}, peer="10.0.0.9", client=trusted) == "10.0.0.9"


CONVERSATION = compile_sources(["header:x-user-id", "conversation", "client_ip"])
CHAT = (
    b'{"model": "m", "messages": [{"role": "system", "content": "Be brief."},'
    b' {"role": "user", "content": "hello"}]}'
)


def conversation(headers: dict[str, str], body: bytes | None) -> str | None:
    return sticky_key(CONVERSATION, CIMultiDict(headers), "10.0.0.7", NOBODY, body)


def test_conversation_source_compiles_with_its_header() -> None:
    assert compile_sources(["conversation", "conversation:X-Thread-Id"]) == (
        ("conversation", "x-conversation-id"),
        ("conversation", "x-thread-id"),
    )


def test_conversation_id_header_wins_over_the_body() -> None:
    assert conversation({"X-Conversation-Id": "conv-42"}, CHAT) == "conv-42"
    assert conversation({"X-User-Id": "alice", "X-Conversation-Id": "c"}, CHAT) == "alice"


def test_conversation_body_decides_without_the_header() -> None:
    key = conversation({}, CHAT)
    assert key is not None and len(key) == 32 and key != "10.0.0.7"
    assert conversation({"X-Conversation-Id": ""}, CHAT) == key  # empty counts as absent


@pytest.mark.parametrize("body", [None, b"", b"{not json", b'{"prompt": "x"}'])
def test_conversation_without_a_readable_body_falls_through(body: bytes | None) -> None:
    assert conversation({}, body) == "10.0.0.7"


def test_named_conversation_header() -> None:
    sources = compile_sources(["conversation:x-thread-id"])
    headers = CIMultiDict({"X-Thread-Id": "t1", "X-Conversation-Id": "c1"})
    assert sticky_key(sources, headers, None, NOBODY, CHAT) == "t1"
    assert sticky_key(sources, CIMultiDict({"X-Conversation-Id": "c1"}), None, NOBODY, None) is None
