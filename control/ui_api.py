"""The operator dashboard at ``/ui/``: static files shipped in the package (``control/ui``).

The page and its assets answer without the token (a browser cannot send one for them); every
figure on it comes from the admin API, which the page calls with the token typed into it
(kept in the tab's session storage, sent as ``Authorization``, never in a URL or a cookie).
Each answer carries a strict Content-Security-Policy (scripts and styles from this origin
only: no inline script, no ``eval``), refuses framing, and turns off content sniffing and
referrers. The files are read once, when this module is imported, never on the event loop.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from types import MappingProxyType

from aiohttp import web

from control.api_table import Handler, Operation

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
SECURITY_HEADERS = MappingProxyType(
    {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        # Revalidated on every load (ETag), so a new version of the package shows at once.
        "Cache-Control": "no-cache",
    }
)
TYPES = MappingProxyType(
    {
        ".html": "text/html; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
    }
)
ASSETS = (
    "index.html",
    "dashboard.css",
    "main.js",
    "api.js",
    "dom.js",
    "charts.js",
    "chart_panel.js",
    "routes.js",
    "rollouts.js",
    "shadow.js",
    "flags.js",
    "audit.js",
    "confirm.js",
)


class Asset:
    __slots__ = ("body", "content_type", "etag")

    def __init__(self, name: str, body: bytes) -> None:
        self.body = body
        self.content_type = TYPES[name[name.rindex(".") :]]
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def _load() -> dict[str, Asset]:
    folder = resources.files("control") / "ui"
    return {name: Asset(name, (folder / name).read_bytes()) for name in ASSETS}


FILES = MappingProxyType(_load())


def _serve(name: str, request: web.Request) -> web.Response:
    asset = FILES[name]
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def page(request: web.Request) -> web.Response:
    return _serve("index.html", request)


async def to_page(request: web.Request) -> web.Response:
    """``/ui`` → ``/ui/``, so the page's relative place is the same either way."""
    raise web.HTTPPermanentRedirect("/ui/", headers=dict(SECURITY_HEADERS))


def _asset_handler(name: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _serve(name, request)

    return handler


def _asset_op(name: str) -> Operation:
    media = TYPES[name[name.rindex(".") :]].partition(";")[0]
    return Operation(
        "GET",
        f"/ui/{name}",
        _asset_handler(name),
        f"The dashboard's {name} (no token needed)",
        public=True,
        responses={
            "200": {"description": name, "content": {media: {"schema": {"type": "string"}}}},
            "304": {"description": "Not modified (If-None-Match)"},
        },
    )


OPERATIONS = (
    Operation(
        "GET",
        "/ui",
        to_page,
        "Redirects to the dashboard, /ui/",
        public=True,
        responses={"308": {"description": "To /ui/"}},
    ),
    Operation(
        "GET",
        "/ui/",
        page,
        "The operator dashboard: open it in a browser and type the admin token (no token "
        "needed for the page itself; its data calls carry it)",
        public=True,
        responses={
            "200": {
                "description": "The dashboard's page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
            "304": {"description": "Not modified (If-None-Match)"},
        },
    ),
    *(_asset_op(name) for name in ASSETS if name != "index.html"),
)
