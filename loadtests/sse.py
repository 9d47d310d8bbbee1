"""Reading an OpenAI-style SSE stream as it arrives, chunk by chunk.

The locustfile feeds the bytes of each network chunk and times the first ``data:`` event
(time to first token). A stream is complete when it ended with ``data: [DONE]`` or with a
choice's ``finish_reason``; the proxy counts any other clean end as ``truncated``, and so do we.
"""

from __future__ import annotations

import json


class StreamReader:
    def __init__(self) -> None:
        self._pending = b""
        self.events = 0
        self.done = False
        self.finished = False
        self.text: list[str] = []

    def feed(self, chunk: bytes) -> int:
        """Take the next bytes; returns how many ``data:`` events they completed."""
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        before = self.events
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                self._data(line[5:].strip())
        return self.events - before

    @property
    def complete(self) -> bool:
        return self.done or self.finished

    def _data(self, payload: bytes) -> None:
        self.events += 1
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self.finished = True
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                self.text.append(delta["content"])
