"""A ``conversation`` stickiness source in the forwarder: each conversation keeps one track,
read from its id header or from the buffered body; a body the proxy does not buffer, or
cannot read, leaves the decision to the next source."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from config.conversation import conversation_key
from config.flags import bucket_of
from config.schema import SplitgateConfig
from proxy.endpoints import EndpointPool
from proxy.table import RoutingTable
from tests.conftest import StartProxy, StartUpstream

SYSTEM = {"role": "system", "content": "You answer in one line."}


STICKINESS = ["header:x-user-id", "conversation", "header:x-fallback"]


def conversation_config(
    stable: str, canary: str, stickiness: list[str] = STICKINESS, **proxy: Any
) -> SplitgateConfig:
    return SplitgateConfig.model_validate(
        {
            "proxy": proxy,
            "routes": [
                {
                    "name": "chat",
                    "match": {"path_prefix": "/"},
                    "stickiness": stickiness,
                    "tracks": [
                        {"name": "stable", "version": "v1", "upstreams": [stable], "weight": 50},
                        {"name": "canary", "version": "v2", "upstreams": [canary], "weight": 50},
                    ],
                }
            ],
        }
    )


def track_of(config: SplitgateConfig, key: str) -> str:
    route = config.routes[0]
    value = bucket_of(route.hash_salt(), key)
    return next(name for name, upper in route.bucket_layout() if value < upper)


def chat(first: str, turns: int = 0) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [SYSTEM, {"role": "user", "content": first}]
    for n in range(turns):
        messages += [
            {"role": "assistant", "content": f"answer {n}"},
            {"role": "user", "content": f"and {n}?"},
        ]
    return {"model": "m", "messages": messages}


@pytest.fixture
async def setup(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> AsyncIterator[tuple[str, SplitgateConfig, aiohttp.ClientSession]]:
    _, stable_url = await start_upstream("v1")
    _, canary_url = await start_upstream("v2")
    config = conversation_config(
        stable_url, canary_url, limits={"buffer_body_bytes": 4096}, timeouts={"client_body": 0.5}
    )
    proxy = await start_proxy(config)
    async with aiohttp.ClientSession() as session:
        yield proxy, config, session


async def post(session: aiohttp.ClientSession, url: str, status: int = 200, **kwargs: Any) -> str:
    async with session.post(f"{url}/v1/chat/completions", **kwargs) as r:
        assert r.status == status, await r.text()
        await r.read()
        return r.headers["X-Splitgate-Track"]


async def test_every_turn_keeps_its_track_and_conversations_spread(
    setup: tuple[str, SplitgateConfig, aiohttp.ClientSession],
) -> None:
    proxy, config, session = setup
    seen: dict[str, set[str]] = {}
    for turn in range(4):
        for i in range(24):
            first = f"conversation {i} opens here"
            track = await post(session, proxy, json=chat(first, turn))
            seen.setdefault(first, set()).add(track)
            key = conversation_key(json.dumps(chat(first)).encode())
            assert key is not None and track == track_of(config, key)
    assert all(len(tracks) == 1 for tracks in seen.values())
    assert {t for tracks in seen.values() for t in tracks} == {"stable", "canary"}


async def test_conversation_id_header_wins_over_the_body(
    setup: tuple[str, SplitgateConfig, aiohttp.ClientSession],
) -> None:
    proxy, config, session = setup
    for i in range(8):
        headers = {"x-conversation-id": f"conv-{i}"}
        tracks = {
            await post(session, proxy, json=chat(f"opening {n}"), headers=headers) for n in range(6)
        }
        assert tracks == {track_of(config, f"conv-{i}")}


def opposed(config: SplitgateConfig, body: bytes) -> str:
    """A fallback value whose track differs from the one the body's key would give."""
    key = conversation_key(body)
    assert key is not None
    return next(
        f"fb-{n}" for n in range(100) if track_of(config, f"fb-{n}") != track_of(config, key)
    )


@pytest.mark.parametrize("how", ["chunked", "too_large", "not_json"])
async def test_a_body_the_proxy_does_not_read_leaves_the_next_source_to_decide(
    setup: tuple[str, SplitgateConfig, aiohttp.ClientSession], how: str
) -> None:
    proxy, config, session = setup
    body = json.dumps(chat("hello", 0) | {"pad": "x" * 5000 if how == "too_large" else ""})
    data = body.encode()
    fallback = opposed(config, data)
    sent: Any = data
    if how == "chunked":

        async def chunks() -> AsyncIterator[bytes]:
            yield data[:100]
            yield data[100:]

        sent = chunks()
    elif how == "not_json":
        sent = b"#" + data  # the fake upstream refuses it (400), after the proxy chose
    status = 400 if how == "not_json" else 200
    track = await post(session, proxy, status, data=sent, headers={"x-fallback": fallback})
    assert track == track_of(config, fallback)


async def test_buffered_body_reaches_the_upstream_intact(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    stable, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2")
    proxy = await start_proxy(conversation_config(stable_url, canary_url))
    data = json.dumps(chat("intact?", 2)).encode()
    async with aiohttp.ClientSession() as session:
        await post(session, proxy, data=data, headers={"content-type": "application/json"})
    (received,) = stable.received + canary.received
    assert received.body == data


async def test_a_stalled_body_is_408_before_any_track_is_chosen(
    setup: tuple[str, SplitgateConfig, aiohttp.ClientSession],
) -> None:
    proxy, _, _ = setup
    host, port = proxy.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b'Content-Type: application/json\r\n\r\n{"model":'
        )
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"Connection: close" in head and b"X-Request-Id" in head
    assert b"X-Splitgate-Track" not in head


def test_only_a_route_with_a_conversation_source_reads_the_body_first() -> None:
    with_it = conversation_config("http://127.0.0.1:1", "http://127.0.0.1:2")
    without = conversation_config(
        "http://127.0.0.1:1", "http://127.0.0.1:2", ["header:x-user-id", "header:x-fallback"]
    )
    for config, expected in ((with_it, True), (without, False)):
        table = RoutingTable.build(config, EndpointPool(config.proxy.outlier_detection), 1)
        assert table.routes[0].reads_body is expected
