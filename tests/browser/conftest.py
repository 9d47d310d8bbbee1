"""The dashboard in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by
``.ci/run`` when missing; never a downloaded one) driven by Playwright's async API, against a
real control plane and proxy (processes), a real redis-server and fake LLM backends, all on
127.0.0.1. Screenshots go to ``artifacts/screenshots/``."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize, async_playwright

from splitgate.redis_server import RedisServer
from tests.conftest import StartUpstream
from tests.integration.conftest import PlaneProcess, RunPlane, run_plane

__all__ = ["browser", "page", "run_plane", "stack"]  # fixtures

TOKEN = "dashboard-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = os.environ.get("SPLITGATE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parents[2] / "artifacts" / "screenshots"
LAPTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)


@dataclass
class Stack:
    control: PlaneProcess
    proxy: PlaneProcess
    canary_url: str
    session: aiohttp.ClientSession

    @property
    def ui(self) -> str:
        return f"{self.control.url}/ui/"

    async def admin(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        """Call the admin API; the answer's JSON (any status but 2xx fails the test)."""
        sent = {**AUTH, **headers}
        data = body if isinstance(body, str) else None
        json = None if isinstance(body, str) else body
        async with self.session.request(
            method, self.control.url + path, json=json, data=data, headers=sent
        ) as r:
            assert r.status < 300, await r.text()
            return await r.json()

    async def traffic(self, requests: int) -> None:
        """Requests through the proxy from many sticky users (for the charts and the split)."""
        for i in range(requests):
            headers = {"x-user-id": f"user-{i}"}
            async with self.session.get(f"{self.proxy.url}/v1/models", headers=headers) as r:
                assert r.status == 200, await r.text()


@pytest.fixture
async def stack(
    tmp_path: Path, start_upstream: StartUpstream, run_plane: RunPlane, redis_server: RedisServer
) -> AsyncIterator[Stack]:
    _, stable = await start_upstream("v1.0.0")
    _, canary = await start_upstream("v1.1.0")
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"""routes:
  - name: chat
    match: {{path_prefix: /v1/}}
    stickiness: ["header:x-user-id"]
    tracks:
      - {{name: stable, version: v1.0.0, upstreams: ["{stable}"], weight: 100}}
      - {{name: canary, version: v1.1.0, upstreams: ["{canary}"], weight: 0}}
  - name: embed
    match: {{path_prefix: /v1/embeddings}}
    tracks:
      - {{name: stable, version: v1.0.0, upstreams: ["{stable}"], weight: 100}}
""",
        encoding="utf-8",
    )
    env = {
        "SPLITGATE_ADMIN_TOKEN": TOKEN,
        "SPLITGATE_REDIS_URL": redis_server.url,
        "SPLITGATE_ROLLOUT_INTERVAL": "0.3s",
        "SPLITGATE_LEASE": "1s",
    }
    control = await run_plane("control", "--config", str(routes), env=env)
    proxy = await run_plane(
        "proxy", "--config", str(routes), env={**env, "SPLITGATE_INSTANCE": "proxy-1"}
    )
    async with aiohttp.ClientSession() as session:
        yield Stack(control, proxy, canary, session)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (never a download)")
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


class Watched:
    """A page, and what it said that a test must not see: script errors, CSP violations,
    dialogs (an ``alert`` would be injected script running)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("dialog", self._dialog)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    async def _dialog(self, dialog: Any) -> None:
        self.problems.append(f"a dialog opened: {dialog.message}")
        await dialog.dismiss()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport=LAPTOP)
    watched = Watched(await context.new_page())
    yield watched
    await context.close()
    assert watched.problems == []


async def screenshot(page: Page, name: str) -> None:
    """``artifacts/screenshots/<name>-laptop.png`` and ``-phone.png``, then back to a laptop."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}-laptop.png", full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=SCREENSHOTS / f"{name}-phone.png", full_page=True)
    await page.set_viewport_size(LAPTOP)


async def sign_in(page: Page, url: str) -> None:
    await page.goto(url)
    await page.get_by_label("Admin token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#app").wait_for(state="visible", timeout=10_000)
