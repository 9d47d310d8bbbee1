"""The sticky key of a conversation read from its request body, for the ``conversation``
stickiness source (``config.stickiness``) when the request carries no conversation id.

Every turn of a chat re-sends the conversation from its start, so the instructions (system
or developer messages before the first user message; the Responses API's ``instructions``)
and the first user message are the same on every turn: their hash names the conversation.

The key is ``blake2b-128`` (hex) over, for each text in order (the instructions, then the
first user message), ``len(utf8) ":" utf8``, where ``len`` is the decimal byte count. A
message's text is its ``content`` when that is a string, else the concatenation of the
``text`` of its parts. Golden vectors in ``tests/config/test_conversation.py`` pin it.

Read from:
- chat completions: ``messages``;
- the Responses API: ``instructions`` and ``input`` (a string is the first user message),
  unless the request continues a stored response (``previous_response_id``) or a stored
  conversation (``conversation``): its body then holds only the new turn.

No key (None) when the body is not a JSON object, has neither form, or has no user message
with text. The key is a digest, never the text: it can be bucketed, not read back.

Chat completions from ``SCAN_FROM`` bytes are read only up to their first user message: the
top-level object is scanned key by key, and once ``messages`` begins its messages are decoded
one at a time until the first user message, so a long conversation's history is never parsed
(14 µs for a 67 KB body, against 169 µs read whole; figures in docs/STICKINESS.md). What follows is not looked at: a body broken after its opening, or
one that repeats ``messages`` (the last would win in a full parse), may get a key a full
parse would not give. Anything the scan cannot follow (not UTF-8, a byte-order mark,
``messages`` that is not an array) is parsed whole, as before.
"""

from __future__ import annotations

import json
import re
from hashlib import blake2b
from typing import Any

_INSTRUCTIONS = frozenset({"system", "developer"})
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
SCAN_FROM = 4096
"""Bodies from this size are scanned; below it a whole parse is cheaper (one C call: 5 µs
for 300 bytes, where the scan's steps cost about 10 µs whatever the size)."""


def _skip(text: str, at: int) -> int:
    """The index of the first character from ``at`` that is not JSON whitespace."""
    found = _WS.match(text, at)
    return at if found is None else found.end()


class _Whole:
    """The scan cannot follow this body: parse it whole."""


_WHOLE = _Whole()


def conversation_key(body: bytes) -> str | None:
    """The conversation's key from a buffered JSON request body, or None (see the module)."""
    found: Any = _WHOLE
    if len(body) >= SCAN_FROM:
        try:
            found = _scan(body.decode("utf-8"))
        except UnicodeDecodeError:
            found = _WHOLE
    if isinstance(found, _Whole):
        try:
            found = json.loads(body)
        except (ValueError, RecursionError):  # not UTF-8 or not JSON: the source is absent
            return None
    if isinstance(found, _Key):
        return found.key
    return key_of(found)


class _Key:
    """The key, found before the body's end."""

    __slots__ = ("key",)

    def __init__(self, key: str | None) -> None:
        self.key = key


def _scan(text: str) -> _Key | dict[str, Any] | _Whole:
    """The top-level object key by key: a chat's key as soon as its first user message is
    read (``_Key``), else the whole object (every value decoded, the last of a repeated key
    kept, as a full parse would)."""
    at = _skip(text, 0)
    if text[at : at + 1] != "{":
        return _WHOLE
    doc: dict[str, Any] = {}
    at = _skip(text, at + 1)
    if text[at : at + 1] == "}":
        return doc if not text[at + 1 :].strip(" \t\n\r") else _WHOLE
    try:
        while True:
            if text[at : at + 1] != '"':
                return _WHOLE
            name, at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            if text[at : at + 1] != ":":
                return _WHOLE
            at = _skip(text, at + 1)
            if name == "messages" and text[at : at + 1] == "[":
                return _first_turn(text, at + 1)
            doc[name], at = _DECODER.raw_decode(text, at)
            at = _skip(text, at)
            sep = text[at : at + 1]
            if sep == "}":
                return doc if not text[at + 1 :].strip(" \t\n\r") else _WHOLE
            if sep != ",":
                return _WHOLE
            at = _skip(text, at + 1)
    except (ValueError, RecursionError):
        return _WHOLE


def _first_turn(text: str, at: int) -> _Key | _Whole:
    """The key from the messages starting at ``at``: decoded one at a time, up to the first
    user message."""
    texts: list[str] = []
    at = _skip(text, at)
    if text[at : at + 1] == "]":
        return _Key(None)
    while True:
        message, at = _DECODER.raw_decode(text, at)
        if isinstance(message, dict):
            role = message.get("role")
            if role in _INSTRUCTIONS:
                texts.append(_text(message.get("content")))
            elif role == "user":
                return _Key(_digest([*texts, _text(message.get("content"))]))
        at = _skip(text, at)
        sep = text[at : at + 1]
        if sep == "]":
            return _Key(None)  # no user message: no opening
        if sep != ",":
            return _WHOLE
        at = _skip(text, at + 1)


def key_of(doc: Any) -> str | None:
    """The key of a decoded body (the whole parse's reading)."""
    if not isinstance(doc, dict):
        return None
    messages = doc.get("messages")
    if isinstance(messages, list):
        return _digest(_opening([], messages))
    given = doc.get("input")
    if given is None or "previous_response_id" in doc or "conversation" in doc:
        return None
    instructions = doc.get("instructions")
    texts = [instructions] if isinstance(instructions, str) and instructions else []
    if isinstance(given, str):
        return _digest([*texts, given])
    if isinstance(given, list):
        return _digest(_opening(texts, given))
    return None


def _opening(texts: list[str], messages: list[Any]) -> list[str]:
    """The instructions before the first user message, then its text; [] without one."""
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in _INSTRUCTIONS:
            texts.append(_text(message.get("content")))
        elif role == "user":
            return [*texts, _text(message.get("content"))]
    return []


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


def _digest(texts: list[str]) -> str | None:
    if not texts or not texts[-1]:
        return None  # no first user message, or one with no text (an image alone)
    digest = blake2b(digest_size=16)
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(b"%d:" % len(data))
        digest.update(data)
    return digest.hexdigest()
