"""Feedback through the proxy's public endpoint: attributed to the answering version."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from config.feedback import pair_payload, sign, verify
from config.schema import SplitgateConfig
from tests.conftest import StartProxy, StartUpstream, refused_url, two_track_config

ISSUED = int(time.time())
"""When the test pairs' ids were issued."""


async def post(proxy: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(f"{proxy}/v1/feedback", json=body) as r:
        return r.status, await r.json()


async def metrics_text(proxy: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"{proxy}/metrics") as r:
        return await r.text()


async def test_ids_are_signed_for_the_answering_track(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, stable = await start_upstream("v1.0.0")
    config = SplitgateConfig.model_validate(
        {
            "routes": [
                {
                    "name": "chat",
                    "tracks": [
                        {"name": "stable", "version": "v1.0.0", "upstreams": [stable], "weight": 0},
                        {
                            "name": "canary",
                            "version": "v1.1.0",
                            "upstreams": [refused_url()],
                            "weight": 100,
                        },
                    ],
                }
            ]
        }
    )
    proxy = await start_proxy(config)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{proxy}/v1/models") as r:  # canary refuses: answered by stable
            own = r.headers["X-Request-Id"]
            assert r.headers["X-Splitgate-Track"] == "stable"
        async with s.get(f"{proxy}/v1/models", headers={"X-Request-Id": "client-7"}) as r:
            assert r.headers["X-Request-Id"] == "client-7"
            signed = r.headers["X-Splitgate-Feedback-Id"]
    assert (await post(proxy, {"request_id": own, "hallucination": True}))[0] == 202
    assert (await post(proxy, {"request_id": signed, "rating": 4}))[0] == 202
    text = await metrics_text(proxy)
    assert (
        'splitgate_feedback_total{kind="hallucination_yes",route="chat",track="stable",version="v1.0.0"} 1.0'
        in text
    )
    assert (
        'splitgate_feedback_total{kind="rating_sum",route="chat",track="stable",version="v1.0.0"} 4.0'
        in text
    )


async def test_forged_ids_and_bad_fields_are_refused(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, url = await start_upstream()
    proxy = await start_proxy(two_track_config(url, url, canary_weight=0))
    async with aiohttp.ClientSession() as s, s.get(f"{proxy}/v1/models") as r:
        rid = r.headers["X-Request-Id"]
    forged = rid[:-1] + ("1" if rid.endswith("0") else "0")  # always differs from the real tag
    status, body = await post(proxy, {"request_id": forged, "rating": 3})
    assert (status, body["error"]["param"]) == (422, "request_id")
    status, body = await post(proxy, {"request_id": rid, "rating": 9})
    assert (status, body["errors"][0]["field"]) == (422, "rating")
    status, body = await post(proxy, {"request_id": rid})
    assert (status, body["errors"][0]["field"]) == (422, "body")
    status, body = await post(proxy, {"request_id": rid, "rating": 3, "stars": 5})
    assert (status, body["errors"][0]["field"], body["errors"][0]["reason"]) == (
        422,
        "stars",
        "unknown field",
    )
    assert "splitgate_feedback_total{" not in await metrics_text(proxy)


async def test_public_feedback_is_rate_limited(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, url = await start_upstream()
    proxy = await start_proxy(
        two_track_config(url, url, canary_weight=0, feedback={"rate_per_second": 0.01, "burst": 3})
    )
    async with aiohttp.ClientSession() as s, s.get(f"{proxy}/v1/models") as r:
        rid = r.headers["X-Request-Id"]
    statuses = [(await post(proxy, {"request_id": rid, "rating": 5}))[0] for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    assert verify(b"wrong", rid) is None


async def test_verdicts_on_shadow_pairs_are_refused_here(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    """Only the control plane keeps one verdict per pair: the proxy refuses every verdict,
    even on an id it signed, and counts nothing."""
    _, url = await start_upstream()
    proxy = await start_proxy(two_track_config(url, url, canary_weight=0))
    async with aiohttp.ClientSession() as s, s.get(f"{proxy}/v1/models") as r:
        rid = r.headers["X-Request-Id"]
    pair_id = sign(b"any-key", "n1", pair_payload("chat", "canary", "v1.1.0", ISSUED))
    for body in (
        {"request_id": rid, "shadow_verdict": "better"},
        {"request_id": pair_id, "shadow_verdict": "same"},
        {"request_id": rid, "shadow_verdict": "worse", "rating": 5},
    ):
        status, answer = await post(proxy, body)
        assert (status, answer["errors"][0]["field"]) == (422, "shadow_verdict"), answer
        assert "admin API" in answer["errors"][0]["reason"]
    assert "splitgate_feedback_total{" not in await metrics_text(proxy)
