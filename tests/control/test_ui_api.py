"""The dashboard's files: served without the token, with a strict CSP and the framing and
sniffing headers; the data behind them still needs the token. No inline script anywhere."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.keys import Keys
from control.app import ControlApp
from control.redis_client import connect
from control.ui_api import ASSETS
from splitgate.redis_server import RedisServer
from tests.control.api_helpers import SEED, TOKEN

UI = Path(__file__).parents[2] / "control" / "ui"


@pytest.fixture
async def control(redis_server: RedisServer) -> AsyncIterator[ControlApp]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield app
    await app.close()


@pytest.mark.parametrize("name", ["", *(a for a in ASSETS if a != "index.html")])
async def test_each_file_answers_without_the_token_with_the_security_headers(
    client: TestClient[Any, Any], name: str
) -> None:
    r = await client.get(f"/ui/{name}")
    assert r.status == 200
    csp = r.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "unsafe" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    again = await client.get(f"/ui/{name}", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status == 304


async def test_ui_redirects_to_the_page_and_the_api_still_needs_the_token(
    client: TestClient[Any, Any],
) -> None:
    r = await client.get("/ui", allow_redirects=False)
    assert r.status == 308 and r.headers["Location"] == "/ui/"
    assert (await client.get("/v1/routes")).status == 401
    assert (await client.get("/ui/secret.js")).status == 401  # not a file of the dashboard
    assert (await client.get("/ui/../v1/routes")).status == 401


def test_no_inline_script_style_or_handler_and_no_html_from_data() -> None:
    page = (UI / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="/ui/main.js">']
    assert "<style" not in page and " style=" not in page and not re.search(r"\son\w+=", page)
    for script in UI.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert risky not in text, f"{script.name} uses {risky}"
        assert "localStorage" not in text and "document.cookie" not in text


def test_every_file_of_the_folder_is_served_and_shipped_in_the_wheel() -> None:
    assert sorted(ASSETS) == sorted(p.name for p in UI.iterdir() if p.is_file())
    pyproject = tomllib.loads((UI.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = pyproject["tool"]["setuptools"]["package-data"]["control"]
    assert all(any(Path("ui", name).match(glob) for glob in shipped) for name in ASSETS)
