"""What the simulated users send: conversations of chat turns with realistic prompt sizes.

A locust user plays one conversation after another. Each conversation belongs to an end user
drawn from a pool of ``user_pool`` ids, so users come back in later conversations (and land
on the track they had, unless the weights changed in between); its turns carry the whole
history so far, as chat clients do, so requests grow along a conversation.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from typing import Any

PROMPT_SIZES: dict[str, tuple[int, int]] = {
    "short": (10, 60),
    "medium": (150, 500),
    "long": (1000, 3000),
}
"""Words in a user message, per size: a question, a paragraph with context, a pasted document."""

_WORDS = [
    "the",
    "model",
    "answer",
    "request",
    "user",
    "canary",
    "stable",
    "version",
    "latency",
    "token",
    "stream",
    "prompt",
    "context",
    "document",
    "summary",
    "table",
    "deploy",
    "rollout",
    "weight",
    "traffic",
    "error",
    "budget",
    "review",
    "customer",
    "invoice",
    "refund",
    "policy",
    "shipping",
    "order",
    "account",
    "password",
    "reset",
    "language",
    "translate",
    "explain",
    "compare",
    "list",
    "steps",
    "example",
    "code",
    "function",
    "test",
    "release",
    "note",
]

SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and cite the context you used."


@dataclass
class Conversation:
    user: str
    id: str
    turns_left: int
    messages: list[dict[str, str]] = field(default_factory=list)

    def answered(self, text: str) -> None:
        """Keep the assistant's answer in the history, as a chat client does."""
        self.messages.append({"role": "assistant", "content": text})


@dataclass(frozen=True)
class Turn:
    body: dict[str, Any]
    stream: bool
    size: str


class Workload:
    """Draws conversations and turns; one per locust user (its own random generator)."""

    def __init__(
        self,
        rng: random.Random,
        *,
        model: str,
        stream_share: float,
        user_pool: int,
        user_prefix: str,
        prompt_mix: dict[str, float],
        turns: tuple[int, int],
        max_tokens: int,
    ) -> None:
        self._rng = rng
        self._model = model
        self._stream_share = stream_share
        self._user_pool = user_pool
        self._user_prefix = user_prefix
        self._sizes = list(prompt_mix)
        self._size_weights = list(prompt_mix.values())
        self._turns = turns
        self._max_tokens = max_tokens

    def conversation(self) -> Conversation:
        user = f"{self._user_prefix}{self._rng.randrange(self._user_pool)}"
        return Conversation(
            user=user,
            id=f"conv-{secrets.token_hex(6)}",
            turns_left=self._rng.randint(*self._turns),
            messages=[{"role": "system", "content": SYSTEM_PROMPT}],
        )

    def turn(self, conversation: Conversation) -> Turn:
        """The next request of ``conversation``; its user message joins the history."""
        size = self._rng.choices(self._sizes, self._size_weights)[0]
        conversation.messages.append({"role": "user", "content": self.text(size)})
        conversation.turns_left -= 1
        stream = self._rng.random() < self._stream_share
        body: dict[str, Any] = {
            "model": self._model,
            "messages": list(conversation.messages),
            "max_tokens": self._max_tokens,
            "user": conversation.user,
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return Turn(body, stream, size)

    def text(self, size: str) -> str:
        low, high = PROMPT_SIZES[size]
        words = self._rng.choices(_WORDS, k=self._rng.randint(low, high))
        return " ".join(words).capitalize() + "?"
