"""What the forwarder's end-to-end tests share: request bodies, a one-route configuration
built from tracks, polling until a condition holds, and a raw exchange on a socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from config.schema import SplitgateConfig

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True}


def config(tracks: list[dict[str, Any]], **proxy: Any) -> SplitgateConfig:
    return SplitgateConfig.model_validate(
        {
            "proxy": proxy,
            "routes": [{"name": "chat", "match": {"path_prefix": "/v1/"}, "tracks": tracks}],
        }
    )


def track(name: str, weight: float, *urls: str) -> dict[str, Any]:
    return {"name": name, "version": f"v-{name}", "upstreams": list(urls), "weight": weight}


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``condition()`` holds, checking every 20 ms; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling state owned by another server
            await asyncio.sleep(0.02)


async def raw_exchange(base: str, request: bytes) -> bytes:
    """Send raw bytes, read until the proxy closes or 10 s pass; return everything read."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(10):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        await writer.wait_closed()
