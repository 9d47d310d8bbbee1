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
"""

from __future__ import annotations

import json
from hashlib import blake2b
from typing import Any

_INSTRUCTIONS = frozenset({"system", "developer"})


def conversation_key(body: bytes) -> str | None:
    """The conversation's key from a buffered JSON request body, or None (see the module)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8 or not JSON: the source is absent
        return None
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
