"""Request bodies: small ones are read whole (and may be replayed), big ones are streamed.

A body with a Content-Length up to ``buffer_body_bytes`` is read before the upstream is
chosen, so a failed connect can be retried on another endpoint. Anything larger, or sent
chunked, streams to the upstream as it arrives; it is counted against ``max_body_bytes`` on
the way and its reads share one deadline. Once a streamed body has started to flow it can
never be sent again, so it is never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import StreamReader


class BodyTooLarge(Exception):
    pass


class StreamedBody:
    __slots__ = ("_content", "_deadline", "_limit", "started", "timed_out", "too_large")

    def __init__(self, content: StreamReader, limit: int, deadline: float) -> None:
        self._content = content
        self._limit = limit
        self._deadline = deadline
        self.started = False
        self.too_large = False
        self.timed_out = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes in arrival order; raises once the limit or the deadline is passed."""
        self.started = True
        total = 0
        content = self._content
        while True:
            try:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await content.readany()
            except TimeoutError:
                self.timed_out = True
                raise
            if not chunk:
                return
            total += len(chunk)
            if total > self._limit:
                self.too_large = True
                raise BodyTooLarge(f"request body is larger than {self._limit} bytes")
            yield chunk
