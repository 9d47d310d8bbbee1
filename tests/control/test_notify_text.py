"""The webhook configuration and message text: ``SPLITGATE_WEBHOOKS`` parsed into URLs (a bad
entry named), and the one-line summary every payload carries."""

from __future__ import annotations

import re
from typing import Any

import pytest

from control.notify import parse_webhook_urls, summary
from tests.control.notify_helpers import event


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("", []),
        ("  ", []),
        ("https://hooks.example.com/a", ["https://hooks.example.com/a"]),
        (
            "https://a.example.com/x?t=1, http://127.0.0.1:8080/hook\n https://b.example.com",
            ["https://a.example.com/x?t=1", "http://127.0.0.1:8080/hook", "https://b.example.com"],
        ),
        (
            "http://a.example.com,,http://b.example.com,",
            ["http://a.example.com", "http://b.example.com"],
        ),
    ],
)
def test_parse_webhook_urls(text: str, urls: list[str]) -> None:
    assert parse_webhook_urls(text) == urls


@pytest.mark.parametrize(
    "bad",
    ["hooks.example.com/a", "ftp://example.com/a", "https://", "https:///path", "http://h:99999/"],
)
def test_parse_webhook_urls_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_webhook_urls(f"https://ok.example.com, {bad}")


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        (
            event("rolled_back", "error_rate vs baseline: 12/100 against 1/100"),
            "splitgate: chat-1a2b3c4d (canary, v1.1.0) rolled_back: error_rate vs baseline: 12/100 against 1/100",
        ),
        (event("promoted"), "splitgate: chat-1a2b3c4d (canary, v1.1.0) promoted"),
        ({"route": "chat", "kind": "custom", "detail": "a\nb"}, "splitgate: chat custom: a b"),
        ({}, "splitgate: ? ?"),
    ],
)
def test_summary(fields: dict[str, Any], line: str) -> None:
    assert summary(fields) == line


def test_summary_stays_short() -> None:
    line = summary(event("report", "x" * 5000))
    assert len(line) < 400 and line.endswith("…")
