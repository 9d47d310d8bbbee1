"""The official OpenAI Python SDK works through the proxy unchanged, streaming and not."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import StartProxy, StartUpstream, refused_url, two_track_config


async def sdk_client(
    start_upstream: StartUpstream, start_proxy: StartProxy, **behaviour: object
) -> openai.AsyncOpenAI:
    _, stable = await start_upstream("v1.0.0", **behaviour)
    _, canary = await start_upstream("v1.1.0", **behaviour)
    proxy = await start_proxy(two_track_config(stable, canary, canary_weight=50))
    return openai.AsyncOpenAI(base_url=f"{proxy}/v1", api_key="sk-test", max_retries=0)


async def test_chat_completion(start_upstream: StartUpstream, start_proxy: StartProxy) -> None:
    async with await sdk_client(start_upstream, start_proxy) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"x-user-id": "alice"},
        )
        completion = raw.parse()
    track = raw.headers["x-splitgate-track"]
    version = raw.headers["x-splitgate-version"]
    assert (track, version) in {("stable", "v1.0.0"), ("canary", "v1.1.0")}
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith(version)
    assert completion.usage is not None and completion.usage.completion_tokens == 8


async def test_streaming_chat_completion(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async with await sdk_client(start_upstream, start_proxy, chunks=5) as client:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hello"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-user-id": "bob"},
        )
        parts = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
    assert len(text.split()) == 5
    assert parts[-1].usage is not None and parts[-1].usage.completion_tokens == 5


async def test_list_models(start_upstream: StartUpstream, start_proxy: StartProxy) -> None:
    async with await sdk_client(start_upstream, start_proxy) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]


async def test_proxy_errors_become_sdk_exceptions(start_proxy: StartProxy) -> None:
    # A proxy whose only upstream refuses connections answers 502 in the OpenAI error shape.
    proxy = await start_proxy(two_track_config(refused_url(), refused_url(), canary_weight=0))
    async with openai.AsyncOpenAI(base_url=f"{proxy}/v1", api_key="sk-test", max_retries=0) as bad:
        with pytest.raises(openai.APIStatusError) as caught:
            await bad.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
    assert caught.value.status_code == 502
    assert "cannot connect" in caught.value.message


async def test_upstream_cut_mid_stream_raises_in_the_sdk(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    async with await sdk_client(start_upstream, start_proxy, chunks=10, reset_after=3) as client:
        stream = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "x"}], stream=True
        )
        received = []
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                received.append(chunk)
    assert len(received) == 3
