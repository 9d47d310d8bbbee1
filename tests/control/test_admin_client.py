"""The command-line tools' admin client against a real control plane (and a real Redis): the
answers, each refusal as one line naming the field and the reason, and no answer at all. The
client blocks, so it runs in a thread beside the event loop that serves the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from config.keys import Keys
from config.schema import RoutingDocument
from control import cli
from control.admin_client import AdminClient, ApiError, BadAnswer, Unreachable
from control.app import ControlApp
from control.redis_client import connect
from splitgate.redis_server import RedisServer
from tests.conftest import StartApp, refused_url

TOKEN = "cli-admin-token-0123456789"
SEED = RoutingDocument.model_validate(
    {
        "routes": [
            {
                "name": "chat",
                "match": {"path_prefix": "/v1/"},
                "tracks": [
                    {
                        "name": "stable",
                        "version": "v1",
                        "upstreams": ["http://127.0.0.1:9001"],
                        "weight": 90,
                    },
                    {
                        "name": "canary",
                        "version": "v2",
                        "upstreams": ["http://127.0.0.1:9002"],
                        "weight": 10,
                    },
                ],
            }
        ]
    }
)


@pytest.fixture
async def admin_url(redis_server: RedisServer, start_app: StartApp) -> AsyncIterator[str]:
    app = ControlApp(connect(redis_server.url), Keys(), SEED, TOKEN, guard_s=0.05)
    await app.start()
    yield await start_app(app.web_app())
    await app.close()


async def in_thread(
    work: Callable[[AdminClient], Any], url: str, token: str = TOKEN, **options: Any
) -> Any:
    def run() -> Any:
        with AdminClient(url, token, **options) as api:
            return work(api)

    return await asyncio.to_thread(run)


async def test_answers_and_writes(admin_url: str) -> None:
    route = await in_thread(lambda api: api.call("GET", "/v1/routes/chat"), admin_url)
    assert [t["weight"] for t in route["route"]["tracks"]] == [90, 10]
    body = {"weights": {"stable": 75, "canary": 25}, "reason": "phase 2"}
    changed = await in_thread(
        lambda api: api.call("PUT", "/v1/routes/chat/weights", body), admin_url
    )
    assert changed["generation"] == route["generation"] + 1
    audit = await in_thread(lambda api: api.call("GET", "/v1/audit"), admin_url)
    assert any(r["actor"].endswith("@cli") and r["reason"] == "phase 2" for r in audit["records"])


@pytest.mark.parametrize(
    ("work", "status", "line"),
    [
        (
            lambda api: api.call(
                "PUT", "/v1/routes/chat/weights", {"weights": {"stable": 75, "blue": 25}}
            ),
            422,
            "422 weights.blue: route 'chat' has no track 'blue'",
        ),
        (lambda api: api.call("GET", "/v1/routes/nope"), 404, "404 "),
        (
            lambda api: api.call("GET", "/v1/routes", params={"windw": "1m"}),
            400,
            "400 windw: unknown query parameter",
        ),
        (
            lambda api: api.send_text("POST", "/v1/rollouts", "canary_deployment: {}", "p.yaml"),
            422,
            "422 p.yaml: canary_deployment.",
        ),
    ],
    ids=["field", "unknown route", "query typo", "plan file named"],
)
async def test_a_refusal_is_one_line_naming_the_field(
    admin_url: str, work: Callable[[AdminClient], Any], status: int, line: str
) -> None:
    with pytest.raises(ApiError) as refused:
        await in_thread(work, admin_url)
    assert refused.value.status == status
    assert str(refused.value).startswith(line) and "\n" not in str(refused.value)


async def test_a_wrong_token_is_401(admin_url: str) -> None:
    with pytest.raises(ApiError, match=r"^401 missing or wrong bearer token$"):
        await in_thread(lambda api: api.call("GET", "/v1/routes"), admin_url, token="wrong")


async def test_no_listener_is_unreachable() -> None:
    with pytest.raises(Unreachable, match=r"^connection refused$"):
        await in_thread(lambda api: api.call("GET", "/v1/routes"), refused_url())


def not_the_admin_api() -> web.Application:
    """A web server that is not the admin API: a page, a gateway's error, and a hang."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    async def gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("never answers")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/gateway", gateway)
    app.router.add_get("/hang", hang)
    return app


async def test_what_is_not_the_admin_api(start_app: StartApp) -> None:
    url = await start_app(not_the_admin_api())
    with pytest.raises(BadAnswer, match=r"/page answered 200 with something other than JSON"):
        await in_thread(lambda api: api.call("GET", "/page"), url)
    with pytest.raises(ApiError, match=r"^502 Bad Gateway$"):
        await in_thread(lambda api: api.call("GET", "/gateway"), url)

    quick = httpx.Timeout(0.2)
    with pytest.raises(Unreachable, match=r"^no answer within 0\.2 s$"):
        await in_thread(lambda api: api.call("GET", "/hang"), url, timeout=quick)


@pytest.mark.parametrize("url", ["localhost:8081", "ftp://host/", "http://"])
def test_an_admin_url_that_is_not_http_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="admin URL"):
        AdminClient(url, TOKEN)


async def run_cli(
    capsys: pytest.CaptureFixture[str], admin_url: str, *argv: str
) -> tuple[int, str, str]:
    """``splitgate ARGV`` in this process (in a thread): exit status, stdout, stderr."""
    env = {"SPLITGATE_ADMIN_URL": admin_url, "SPLITGATE_ADMIN_TOKEN": TOKEN}
    code = await asyncio.to_thread(cli.main, list(argv), env)
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_commands_outputs_and_exit_statuses(
    admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run_cli(
        capsys, admin_url, "weights", "set", "chat", "stable=80", "canary=20"
    )
    assert (code, err) == (0, "")
    assert out.startswith("route chat at generation 2\n") and "20 %" in out
    code, _, err = await run_cli(
        capsys, admin_url, "weights", "set", "chat", "stable=75", "blue=25"
    )
    assert (code, err) == (
        1,
        "splitgate weights: 422 weights.blue: route 'chat' has no track 'blue'\n",
    )
    code, _, err = await run_cli(capsys, admin_url, "weights", "get", "chat", "--token", "wrong")
    assert (code, err) == (
        1,
        "splitgate weights: 401 missing or wrong bearer token "
        "(check --token or SPLITGATE_ADMIN_TOKEN)\n",
    )
    code, out, _ = await run_cli(capsys, admin_url, "flags", "list", "--json")
    assert code == 0 and '"flags": {}' in out
    code, out, _ = await run_cli(capsys, admin_url, "rollout", "status")
    assert (code, out) == (0, "no rollouts\n")
    code, out, _ = await run_cli(capsys, admin_url, "top", "--once", "--window", "10s")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["ROUTE", "TRACK", "VERSION"]
    code, _, err = await run_cli(capsys, admin_url, "top", "--once", "--window", "1y")
    assert code == 1 and err.startswith("splitgate top: 4") and "window" in err
    code, _, err = await run_cli(capsys, refused_url(), "flags", "list")
    assert code == 2 and err.endswith(": connection refused\n")
