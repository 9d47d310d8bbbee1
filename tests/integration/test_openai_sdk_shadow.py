"""Shadow traffic as a user meets it, with the official OpenAI SDK: every answer is the
primary's, whole, while the shadow resets its streams mid-way; the pairs in Redis hold the
text the SDK received beside the shadow's."""

from __future__ import annotations

import asyncio
from typing import cast

import openai
from redis.asyncio import Redis

from config.keys import Keys
from config.shadow import PAIR_FIELD, ShadowPair
from proxy.app import Follow
from splitgate.redis_server import RedisServer
from tests.conftest import StartProxy, StartUpstream
from tests.proxy.test_shadow import shadow_config

WAIT = 10.0


async def test_the_sdk_sees_only_the_primary_and_the_pairs_hold_both_answers(
    redis_server: RedisServer, start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, stable = await start_upstream("v1", chunks=6)
    _, canary = await start_upstream("v2", chunks=6, reset_after=3)
    config = shadow_config(stable, canary, store_text=True)
    proxy = await start_proxy(config, follow=Follow(redis_server.url, "sdk", poll_s=0.2))
    received: dict[str, str] = {}
    async with openai.AsyncOpenAI(
        base_url=f"{proxy}/v1", api_key="sk-test", max_retries=0
    ) as client:
        for turn in range(3):
            raw = await client.chat.completions.with_raw_response.create(
                model="fake-model", messages=[{"role": "user", "content": f"question {turn}"}]
            )
            content = raw.parse().choices[0].message.content
            assert raw.headers["x-splitgate-track"] == "stable" and content is not None
            received[raw.headers["x-request-id"]] = content
            stream = await client.chat.completions.with_raw_response.create(
                model="fake-model",
                messages=[{"role": "user", "content": f"stream {turn}"}],
                stream=True,
            )
            parts = [chunk async for chunk in stream.parse()]
            text = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
            assert parts[-1].choices[0].finish_reason == "stop"  # whole, despite the shadow
            received[stream.headers["x-request-id"]] = text
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    key = Keys().shadow_pairs("chat")
    try:
        async with asyncio.timeout(WAIT):
            while await redis.xlen(key) < 6:  # noqa: ASYNC110 - the proxy's flush lands there
                await asyncio.sleep(0.05)
        entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(key))
    finally:
        await redis.aclose()
    pairs = [ShadowPair.model_validate_json(fields[PAIR_FIELD]) for _, fields in entries]
    assert {p.request_id: p.primary.text for p in pairs} == received
    assert all(p.primary.version == "v1" and p.shadow.version == "v2" for p in pairs)
    streamed = [p for p in pairs if p.primary.ttfb_ms is not None and p.shadow.error == "cut"]
    assert len(streamed) == 3  # the shadow's streams were cut; the users' were not
    assert all(p.primary.error is None for p in pairs)
    whole = [p for p in pairs if p.shadow.error is None]
    assert all(p.shadow.text and p.shadow.text.startswith("v2-token0") for p in whole)
