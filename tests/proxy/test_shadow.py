"""Shadow traffic through a real proxy: the user sees only the primary, whatever the shadow
does (refuses, hangs, resets mid-stream); copies are counted with ``mode="shadow"``, bounded
by their limits, never retried, and left out of the track's live counts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from config.schema import SplitgateConfig
from proxy.app import ProxyApp
from proxy.server import address
from proxy.server import start as start_server
from proxy.shadow import Mirror
from tests.conftest import StartUpstream, refused_url
from tests.proxy.scripted_upstream import eventually


def shadow_config(stable: str, canary: str, **shadow: Any) -> SplitgateConfig:
    return SplitgateConfig.model_validate(
        {
            "proxy": {"limits": {"buffer_body_bytes": 4096}},
            "routes": [
                {
                    "name": "chat",
                    "stickiness": ["header:x-user-id"],
                    "tracks": [
                        {"name": "stable", "version": "v1", "upstreams": [stable], "weight": 100},
                        {"name": "canary", "version": "v2", "upstreams": [canary], "weight": 0},
                    ],
                    "shadow": {"track": "canary", "percent": 100, **shadow},
                }
            ],
        }
    )


class Proxy:
    def __init__(self, app: ProxyApp, url: str) -> None:
        self.app = app
        self.url = url

    @property
    def mirror(self) -> Mirror:
        return self.app.mirror

    def shadow_stats(self) -> Any:
        return self.app.stats.get("chat", "canary", "v2", mode="shadow")

    def live_stats(self, track: str = "stable", version: str = "v1") -> Any:
        return self.app.stats.get("chat", track, version)

    async def copies_done(self, count: int) -> None:
        """Until ``count`` copies have ended (each counts once in the shadow's stats)."""
        await eventually(lambda: self.shadow_stats().requests >= count)


@pytest.fixture
async def start() -> AsyncIterator[Any]:
    started: list[tuple[ProxyApp, Any]] = []

    async def run(config: SplitgateConfig) -> Proxy:
        app = ProxyApp(config)
        await app.start()
        runner = await start_server(app, "127.0.0.1", 0)
        started.append((app, runner))
        return Proxy(app, f"http://{address(runner)}")

    yield run
    for app, runner in started:
        await runner.cleanup()
        await app.close()


def chat(stream: bool = False, text: str = "hello") -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}


async def post(url: str, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=body, headers=headers) as r,
    ):
        return r.status, dict(r.headers), await r.read()


async def test_the_copy_reaches_the_shadow_and_the_user_sees_the_primary(
    start_upstream: StartUpstream, start: Any
) -> None:
    stable, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2")
    proxy = await start(shadow_config(stable_url, canary_url))
    for stream in (False, True):
        status, headers, body = await post(proxy.url, chat(stream), **{"x-user-id": "u1"})
        assert status == 200
        assert headers["X-Splitgate-Track"] == "stable"
        assert b"v1-token0" in body and b"v2-token" not in body
    await proxy.copies_done(2)
    copies = canary.received
    assert [json.loads(r.body)["stream"] for r in copies] == [False, True]
    assert all(r.headers["x-splitgate-shadow"] == "1" for r in copies)
    assert all(r.headers["x-request-id"] for r in copies)
    assert [r.body for r in copies] == [r.body for r in stable.received]
    shadow = proxy.shadow_stats()
    assert (shadow.requests, sum(shadow.errors.values())) == (2, 0)
    assert shadow.completion_tokens > 0  # the non-streamed answer's usage
    # The copies never count as the canary's live traffic.
    assert proxy.live_stats("canary", "v2").requests == 0
    assert proxy.live_stats().requests == 2


async def test_prometheus_labels_the_copies_mode_shadow(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    _, canary_url = await start_upstream("v2")
    proxy = await start(shadow_config(stable_url, canary_url))
    await post(proxy.url, chat())
    await proxy.copies_done(1)
    async with aiohttp.ClientSession() as session, session.get(proxy.url + "/metrics") as r:
        text = await r.text()
    assert (
        'splitgate_requests_total{mode="shadow",route="chat",track="canary",version="v2"} 1.0'
        in text
    )
    assert (
        'splitgate_requests_total{mode="live",route="chat",track="stable",version="v1"} 1.0' in text
    )
    assert 'splitgate_shadow_dropped_total{reason="in_flight",route="chat"} 0.0' in text
    assert 'splitgate_shadow_in_flight{route="chat"} 0.0' in text


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ({"reset_after": 2}, "cut"),  # resets mid-stream
        ({"status": 500}, "upstream_5xx"),
        ({"ttfb": 30.0}, "timeout"),  # slower than the copy's own deadline
    ],
)
async def test_no_shadow_failure_reaches_the_user(
    start_upstream: StartUpstream, start: Any, behaviour: dict[str, Any], error: str
) -> None:
    _, stable_url = await start_upstream("v1")
    _, canary_url = await start_upstream("v2", **behaviour)
    proxy = await start(shadow_config(stable_url, canary_url, timeout="300ms"))
    for n in range(6):
        status, headers, body = await post(proxy.url, chat(stream=n % 2 == 1))
        assert status == 200, body
        assert headers["X-Splitgate-Track"] == "stable"
        assert body.count(b"v1-token") == 8
        if n % 2:
            assert body.rstrip().endswith(b"data: [DONE]")
    await proxy.copies_done(6)
    shadow = proxy.shadow_stats()
    streamed_only = error == "cut"  # the fake resets streams only
    assert shadow.errors[error] == (3 if streamed_only else 6)
    # A copy cut mid-body still had its first byte; one that timed out before any had none.
    assert sum(shadow.ttfb) == (0 if error == "timeout" else 6)
    assert sum(proxy.live_stats().errors.values()) == 0


async def test_a_shadow_that_refuses_connections_costs_the_user_nothing(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    proxy = await start(shadow_config(stable_url, refused_url()))
    for stream in (False, True, False):
        status, _, _ = await post(proxy.url, chat(stream))
        assert status == 200
    await proxy.copies_done(3)
    assert proxy.shadow_stats().errors["connect"] == 3


async def test_copies_over_max_in_flight_are_dropped_and_counted(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2", hang=True)
    proxy = await start(shadow_config(stable_url, canary_url, max_in_flight=2, timeout=60))
    for _ in range(5):
        status, _, _ = await post(proxy.url, chat())
        assert status == 200  # the hanging copies never hold the primary
    gate = proxy.mirror.gate("chat")
    assert gate.dropped["in_flight"] == 3
    assert gate.in_flight == 2
    await eventually(lambda: len(canary.received) >= 2)
    await proxy.app.mirror.close()  # shutdown cancels the copies still running
    assert gate.in_flight == 0
    assert proxy.shadow_stats().client_gone == 2


async def test_the_token_budget_stops_copies_for_the_rest_of_the_minute(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2")
    proxy = await start(shadow_config(stable_url, canary_url, max_tokens_per_minute=5))
    await post(proxy.url, chat())
    await proxy.copies_done(1)  # it reported 18 tokens: over the budget of 5
    for _ in range(3):
        await post(proxy.url, chat())
    assert proxy.mirror.gate("chat").dropped["tokens"] == 3
    assert len(canary.received) == 1


async def test_a_streamed_request_body_is_not_mirrored(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2")
    proxy = await start(shadow_config(stable_url, canary_url))
    status, _, _ = await post(proxy.url, chat(text="x" * 10_000))  # over buffer_body_bytes
    assert status == 200
    assert proxy.mirror.gate("chat").dropped["streamed_body"] == 1
    assert proxy.mirror.gate("chat").in_flight == 0
    assert canary.received == []


async def test_only_posts_to_other_tracks_are_mirrored(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2")
    config = shadow_config(stable_url, canary_url)
    document = config.model_dump()
    document["routes"][0]["tracks"][0]["weight"] = 50
    document["routes"][0]["tracks"][1]["weight"] = 50
    proxy = await start(SplitgateConfig.model_validate(document))
    tracks = []
    for n in range(20):
        _, headers, _ = await post(proxy.url, chat(), **{"x-user-id": f"user-{n}"})
        tracks.append(headers["X-Splitgate-Track"])
    async with aiohttp.ClientSession() as session, session.get(proxy.url + "/v1/models") as r:
        assert r.status == 200
    served_by_stable = tracks.count("stable")
    assert 0 < served_by_stable < 20
    await proxy.copies_done(served_by_stable)
    await asyncio.sleep(0.05)
    # Requests the shadow track serves itself are not copied to it, nor is the GET.
    assert len([r for r in canary.received if "x-splitgate-shadow" in r.headers]) == (
        served_by_stable
    )


async def test_percent_mirrors_a_share(start_upstream: StartUpstream, start: Any) -> None:
    _, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2")
    proxy = await start(shadow_config(stable_url, canary_url, percent=25))
    for _ in range(200):
        await post(proxy.url, chat())
    await eventually(lambda: proxy.mirror.gate("chat").in_flight == 0)
    copies = len(canary.received)
    # 25 % of 200: a binomial with sd 6.1; these bounds are 5 sd away (1 in 3.5 million).
    assert 20 <= copies <= 80


async def test_a_shadow_of_zero_percent_copies_nothing(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2")
    proxy = await start(shadow_config(stable_url, canary_url, percent=0))
    for _ in range(20):
        await post(proxy.url, chat())
    assert canary.received == []


async def test_a_copy_never_waits_for_a_users_connection(
    start_upstream: StartUpstream, start: Any
) -> None:
    _, stable_url = await start_upstream("v1")
    canary, canary_url = await start_upstream("v2", hang=True)
    config = shadow_config(stable_url, canary_url, timeout=60).model_dump()
    config["proxy"]["limits"]["max_connections_per_upstream"] = 1
    proxy = await start(SplitgateConfig.model_validate(config))
    for _ in range(3):
        status, _, _ = await post(proxy.url, chat())
        assert status == 200
    await eventually(lambda: len(canary.received) == 1)
    gate = proxy.mirror.gate("chat")
    # The one connection the shadow's origin may have is held by the first copy: the next
    # copies are dropped rather than queued where a user's request would wait.
    assert (gate.in_flight, gate.dropped["connections"]) == (1, 2)


async def test_pairs_waiting_for_the_flusher_are_bounded_in_bytes(
    start_upstream: StartUpstream, start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, stable_url = await start_upstream("v1")
    _, canary_url = await start_upstream("v2")
    proxy = await start(shadow_config(stable_url, canary_url))
    proxy.mirror.keeps_pairs = True  # as when following Redis, with no flusher draining them
    monkeypatch.setattr("proxy.shadow.MAX_READY_BYTES", 1500)
    for _ in range(4):
        await post(proxy.url, chat())
    await proxy.copies_done(4)
    kept = len(proxy.mirror.ready)
    assert 0 < kept < 4 and proxy.mirror.ready_bytes <= 1500
    assert proxy.mirror.gate("chat").dropped["pairs"] == 4 - kept
    taken = proxy.mirror.take_ready(10)
    assert len(taken) == kept and proxy.mirror.ready_bytes == 0
