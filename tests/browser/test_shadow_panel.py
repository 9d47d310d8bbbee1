"""The shadow pairs in headless Chromium: a route mirrors every POST request to a track whose
backend answers with markup; the real proxy keeps the pairs (its flusher writes them to
Redis), and the page shows the mirroring, the pairs table and both answers' text, as text."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from playwright.async_api import expect

from tests.browser.conftest import Stack, Watched, screenshot, sign_in
from tests.browser.test_dashboard import WAIT_MS, XSS, open_tab
from tests.conftest import StartApp

MIRRORING = "mirroring 100 % of POST requests to green (v2.0.0) · at most 16 in flight"


def markup_backend() -> web.Application:
    """A chat backend whose every answer is ``XSS``."""

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        answer = {
            "id": "chatcmpl-green",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": XSS},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        }
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def applied(stack: Stack) -> None:
    """Until the proxy applies the current routing document (polling another process)."""
    async with asyncio.timeout(WAIT_MS / 1000):
        while not (await stack.admin("GET", "/v1/routes"))["converged"]:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def chat(stack: Stack, requests: int) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}
    for i in range(requests):
        headers = {"x-user-id": f"user-{i}"}
        url = f"{stack.proxy.url}/v1/chat/completions"
        async with stack.session.post(url, json=body, headers=headers) as r:
            assert r.status == 200, await r.text()


async def pairs(stack: Stack, count: int) -> list[dict[str, Any]]:
    """The route's pairs, once the proxy's flusher wrote at least ``count``."""
    async with asyncio.timeout(WAIT_MS / 1000):
        while True:
            found = (await stack.admin("GET", "/v1/routes/chat/shadow/pairs?limit=20"))["pairs"]
            if len(found) >= count:
                return list(found)
            await asyncio.sleep(0.2)


async def test_the_pairs_of_a_mirrored_route_and_their_text(
    page: Watched, stack: Stack, start_app: StartApp
) -> None:
    green = await start_app(markup_backend())
    track = {"version": "v2.0.0", "upstreams": [green], "weight": 0, "reason": "to shadow"}
    await stack.admin("PUT", "/v1/routes/chat/tracks/green", track)
    shadow = {"track": "green", "percent": 100, "store_text": True, "reason": "try v2"}
    await stack.admin("PUT", "/v1/routes/chat/shadow", shadow)
    await applied(stack)

    p = page.page
    await sign_in(p, stack.ui)
    line = p.locator("[data-route=chat] .mirroring")
    await expect(line).to_contain_text(f"{MIRRORING} · pairs with text", timeout=WAIT_MS)
    await expect(p.locator("[data-route=embed] .mirroring")).to_have_count(0)
    await screenshot(p, "routes-shadow")

    await open_tab(p, "Shadow pairs")
    card = p.locator("[data-shadow-route=chat]")
    await expect(card.locator(".empty")).to_have_text("no pairs kept yet", timeout=WAIT_MS)
    await expect(p.locator("[data-shadow-route=embed]")).to_have_count(0)  # neither

    await chat(stack, 3)
    kept = await pairs(stack, 3)
    newest = kept[0]
    assert (newest["primary"]["version"], newest["shadow"]["version"]) == ("v1.0.0", "v2.0.0")
    rows = card.locator("tr[data-pair]")
    await expect(rows).to_have_count(3, timeout=WAIT_MS)  # pairs are read every ~5 s
    await expect(card.locator(".mirroring")).to_contain_text(MIRRORING)
    row = card.locator(f"tr[data-pair='{newest['id']}']")
    await expect(row.locator(".request-id")).to_have_text(newest["request_id"])
    await expect(row.locator(".versions")).to_have_text("v1.0.0 / v2.0.0")
    await expect(row.locator(".status")).to_have_text("200 / 200")
    await expect(row.locator(".finish")).to_have_text("stop / stop")
    primary_text = newest["primary"]["text"]
    assert primary_text and primary_text.startswith("v1.0.0-token0")
    await expect(row.locator(".chars")).to_have_text(f"{len(primary_text)} / {len(XSS)}")

    texts = card.locator(f"tr[data-pair-texts='{newest['id']}'] details")
    await expect(texts.locator(".answer.primary pre")).to_be_hidden()
    await texts.locator("summary").click()
    await expect(texts.locator(".answer.primary figcaption")).to_have_text(
        "Primary: stable (v1.0.0)"
    )
    await expect(texts.locator(".answer.primary pre")).to_have_text(primary_text)
    await expect(texts.locator(".answer.shadow figcaption")).to_have_text("Shadow: green (v2.0.0)")
    await expect(texts.locator(".answer.shadow pre")).to_have_text(XSS)
    assert await p.locator("#app img").count() == 0
    # The next reading of the pairs keeps the row open.
    await chat(stack, 1)
    await expect(rows).to_have_count(4, timeout=WAIT_MS)
    await expect(texts.locator(".answer.shadow pre")).to_have_text(XSS)
    assert await p.locator("#app img").count() == 0
    await screenshot(p, "shadow")
