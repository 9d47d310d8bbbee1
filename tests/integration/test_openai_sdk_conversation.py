"""Multi-turn chats with the official OpenAI SDK through a proxy whose route is sticky by
conversation: every turn of a conversation reaches one version, with no user id at all."""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam

from config.schema import SplitgateConfig
from tests.conftest import StartProxy, StartUpstream

SYSTEM: ChatCompletionMessageParam = {"role": "system", "content": "You are a helpful assistant."}


def config(stable: str, canary: str) -> SplitgateConfig:
    tracks: list[dict[str, Any]] = [
        {"name": "stable", "version": "v1.0.0", "upstreams": [stable], "weight": 50},
        {"name": "canary", "version": "v1.1.0", "upstreams": [canary], "weight": 50},
    ]
    return SplitgateConfig.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "match": {"path_prefix": "/v1/"},
                    "stickiness": ["header:x-user-id", "conversation"],
                    "tracks": tracks,
                }
            ]
        }
    )


async def converse(
    client: openai.AsyncOpenAI, opening: str, turns: int, headers: dict[str, str]
) -> list[str]:
    """One conversation, each turn re-sending the history; the version of every answer."""
    history: list[ChatCompletionMessageParam] = [SYSTEM, {"role": "user", "content": opening}]
    versions = []
    for turn in range(turns):
        if turn % 2:  # every other turn streams
            async with client.chat.completions.with_streaming_response.create(
                model="fake-model", messages=history, stream=True, extra_headers=headers
            ) as raw:
                versions.append(raw.headers["x-splitgate-version"])
                stream = await raw.parse()
                text = "".join([c.choices[0].delta.content or "" async for c in stream])
        else:
            answer = await client.chat.completions.with_raw_response.create(
                model="fake-model", messages=history, extra_headers=headers
            )
            versions.append(answer.headers["x-splitgate-version"])
            text = answer.parse().choices[0].message.content or ""
        assert text.startswith(versions[-1])  # the fake answers with its own version
        history += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Tell me more ({turn})."},
        ]
    return versions


async def test_every_turn_of_each_conversation_reaches_one_version(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    stable, stable_url = await start_upstream("v1.0.0", chunks=3)
    canary, canary_url = await start_upstream("v1.1.0", chunks=3)
    proxy = await start_proxy(config(stable_url, canary_url))
    by_conversation: dict[str, set[str]] = {}
    async with openai.AsyncOpenAI(
        base_url=f"{proxy}/v1", api_key="sk-test", max_retries=0
    ) as client:
        for i in range(16):
            opening = f"Question {i}: how do canary releases work?"
            by_conversation[opening] = set(await converse(client, opening, 4, {}))
        for i in range(4):  # an id header decides, whatever the opening
            versions = await converse(client, "Hi", 3, {"x-conversation-id": f"thread-{i}"})
            by_conversation[f"thread-{i}"] = set(versions)
    assert all(len(versions) == 1 for versions in by_conversation.values()), by_conversation
    assert set().union(*by_conversation.values()) == {"v1.0.0", "v1.1.0"}
    assert stable.user_ids == {} and canary.user_ids == {}  # no user id was ever sent
