"""Shadow pairs: each answer's text read from JSON or a stream's events (chat, completions,
Responses), measured and hashed; text kept only when the route stores it; pairs written to a
capped, expiring stream in Redis by a proxy that follows it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, cast

import aiohttp
from redis.asyncio import Redis

from config.decisions import Decision, ShadowCopy
from config.feedback import verify, verify_pair
from config.keys import Keys
from config.metrics import merge_windows, shadow_arm
from config.shadow import PAIR_FIELD, ShadowPair
from proxy.app import Follow, ProxyApp
from proxy.server import address
from proxy.server import start as start_server
from proxy.shadow_pairs import answer_text
from splitgate.redis_server import RedisServer
from tests.conftest import StartProxy, StartUpstream
from tests.proxy.test_shadow import chat, post, shadow_config

WAIT = 10.0


def sse(*events: dict[str, Any] | str) -> bytes:
    lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return "".join(lines).encode()


def delta(text: str | None, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def test_chat_completion_text_and_finish_reason() -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}]
    }
    assert answer_text(json.dumps(body).encode(), False) == ("Hi.", "stop")
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"text": "b"}]}}]}
    assert answer_text(json.dumps(parts).encode(), False) == ("ab", None)


def test_completions_and_responses_shapes() -> None:
    legacy = {"choices": [{"text": "old", "finish_reason": "length"}]}
    assert answer_text(json.dumps(legacy).encode(), False) == ("old", "length")
    response = {
        "object": "response",
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "new"}]}],
    }
    assert answer_text(json.dumps(response).encode(), False) == ("new", "completed")
    cut = {**response, "status": "incomplete", "incomplete_details": {"reason": "max_tokens"}}
    assert answer_text(json.dumps(cut).encode(), False)[1] == "max_tokens"


def test_stream_text_is_the_deltas_joined() -> None:
    body = sse(delta("Hel"), delta("lo"), delta(None, "stop"), "[DONE]")
    assert answer_text(body, True) == ("Hello", "stop")
    responses = sse(
        {"type": "response.output_text.delta", "delta": "A"},
        {"type": "response.output_text.delta", "delta": "B"},
        {"type": "response.completed", "response": {"status": "completed"}},
    )
    assert answer_text(responses, True) == ("AB", "completed")


def test_stream_text_decodes_escapes_and_skips_what_is_not_text() -> None:
    role = {"choices": [{"delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    tool = {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}
    body = sse(role, delta('say "hi" \\ é\n'), tool, delta("✓"), delta(None, "length"))
    assert answer_text(body, True) == ('say "hi" \\ é\n✓', "length")
    completions = sse({"choices": [{"text": "a"}]}, {"choices": [{"text": "b"}]})
    assert answer_text(completions, True) == ("ab", None)


def test_a_stream_cut_by_the_capture_keeps_what_it_has() -> None:
    body = sse(delta("one "), delta("two")) + b'data: {"choices": [{"delta": {"con'
    assert answer_text(body, True) == ("one two", None)


def test_bodies_that_are_not_answers_give_no_text() -> None:
    assert answer_text(b"", False) == ("", None)
    assert answer_text(b"not json", False) == ("", None)
    assert answer_text(b"[1, 2]", False) == ("", None)
    assert answer_text(b'{"error": {"message": "no"}}', False) == ("", None)
    assert answer_text(b"data: nonsense\n\n", True) == ("", None)


async def pairs(redis: Redis, count: int) -> list[ShadowPair]:
    key = Keys().shadow_pairs("chat")
    async with asyncio.timeout(WAIT):
        while await redis.xlen(key) < count:  # noqa: ASYNC110 - the proxy's flush lands there
            await asyncio.sleep(0.05)
    entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(key))
    return [ShadowPair.model_validate_json(fields[PAIR_FIELD]) for _, fields in entries]


async def test_pairs_keep_hashes_and_lengths_but_no_text_by_default(
    redis_server: RedisServer, start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, stable_url = await start_upstream("v1")
    _, canary_url = await start_upstream("v2", reset_after=3)
    config = shadow_config(stable_url, canary_url)
    url = await start_proxy(config, follow=Follow(redis_server.url, "p1", poll_s=0.2))
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await post(url, chat(), **{"x-request-id": "client-7"})
        await post(url, chat(stream=True))
        first, second = await pairs(redis, 2)
        ttl = await redis.ttl(Keys().shadow_pairs("chat"))
    finally:
        await redis.aclose()
    assert first.request_id == "client-7" and first.route == "chat"
    assert not first.stored_text
    assert (first.primary.track, first.primary.version) == ("stable", "v1")
    assert (first.shadow.track, first.shadow.version) == ("canary", "v2")
    text = " ".join(f"v1-token{i}" for i in range(8))
    assert first.primary.text is None and first.shadow.text is None
    assert first.primary.text_chars == len(text)
    assert first.primary.text_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert first.primary.finish_reason == first.shadow.finish_reason == "stop"
    assert first.primary.status == first.shadow.status == 200
    assert first.shadow.completion_tokens == 8
    assert first.primary.latency_ms is not None and first.primary.ttfb_ms is not None
    # The stream the shadow reset: its pair says so, the user's answer was whole.
    assert second.shadow.error == "cut" and second.primary.error is None
    assert second.shadow.finish_reason is None and second.primary.finish_reason == "stop"
    # The pair id verifies only as the shadow's; the live id only as the primary's.
    assert verify_pair(b"", first.pair_id) is None  # another key
    assert 0 < ttl <= 86_400


async def test_stored_text_is_a_bounded_prefix_and_ids_verify(
    redis_server: RedisServer, start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, stable_url = await start_upstream("v1")
    _, canary_url = await start_upstream("v2")
    config = shadow_config(stable_url, canary_url, store_text=True, text_bytes=12, max_pairs=5)
    url = await start_proxy(config, follow=Follow(redis_server.url, "p1", poll_s=0.2))
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        for _ in range(3):
            await post(url, chat())
        found = await pairs(redis, 3)
        fields = cast(dict[str, str], await redis.hgetall(await _latest_window(redis)))
    finally:
        await redis.aclose()
    assert [p.shadow.text for p in found] == ["v2-token0 v2"] * 3
    assert found[0].primary.text == "v1-token0 v1"
    assert found[0].stored_text
    merged = merge_windows([fields], shadow=True)
    assert merged[(shadow_arm("canary"), "v2")].requests == 3
    assert merged[("stable", "v1")].requests == 3
    assert ("canary", "v2") not in merge_windows([fields])  # never live traffic


async def _latest_window(redis: Redis) -> str:
    async with asyncio.timeout(WAIT):
        while True:
            keys = sorted(cast(list[str], await redis.keys("{splitgate}:metrics:chat:*")))
            if keys:
                fields = cast(dict[str, str], await redis.hgetall(keys[-1]))
                if any(name.endswith("\t\tshadow") for name in fields):
                    return keys[-1]
            await asyncio.sleep(0.05)


async def test_the_pair_ids_are_signed_for_each_side(
    redis_server: RedisServer, start_upstream: StartUpstream
) -> None:
    _, stable_url = await start_upstream("v1")
    _, canary_url = await start_upstream("v2")
    key = b"k" * 32
    app = ProxyApp(
        shadow_config(stable_url, canary_url),
        follow=Follow(redis_server.url, "p1", poll_s=0.2),
        signing_key=key,
    )
    await app.start()
    runner = await start_server(app, "127.0.0.1", 0)
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        url = f"http://{address(runner)}/v1/chat/completions"
        async with aiohttp.ClientSession() as session, session.post(url, json=chat()):
            pass
        (pair,) = await pairs(redis, 1)
        nonce = pair.request_id.partition(".")[0]
        slots = await redis.keys("{splitgate}:decisions:*")
        stored = [d for key in slots if (d := await redis.hget(key, nonce)) is not None]
    finally:
        await redis.aclose()
        await runner.cleanup()
        await app.close()
    assert verify(key, pair.request_id) == ("chat", "stable", "v1")
    assert verify(key, pair.pair_id) is None
    found = verify_pair(key, pair.pair_id)
    assert found is not None and found[:3] == ("chat", "canary", "v2")
    assert verify_pair(key, pair.request_id) is None
    # A mirrored request's routing decision is always kept, and says where its copy went.
    (decision,) = (Decision.model_validate_json(d) for d in stored)
    assert decision.rule == "weights" and decision.track == "stable"
    assert decision.shadow == ShadowCopy(track="canary", version="v2", pair_id=pair.pair_id)
