"""Edge safety on raw sockets, the headers: hop-by-hop headers dropped both ways and forged
response headers replaced, the trusted track override honoured only with the secret and
always stripped, ``X-Forwarded-For`` appended to, and redirects and cookies passed through
without being followed or shared between clients (the raw HTTP helpers: ``raw_http.py``)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from tests.conftest import StartProxy, StartUpstream
from tests.integration.raw_http import (
    Setup,
    StartRecorder,
    assert_json_error,
    connect,
    exchange,
    lower_keys,
    proxy_to_fakes,
    proxy_to_recorders,
    request,
)

SECRET = "s3cret"


# --------------------------------------------------------------------------------------------
# 5. Hop-by-hop headers, both directions
# --------------------------------------------------------------------------------------------


async def test_hop_by_hop_request_headers_are_not_forwarded(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    raw = request(
        "POST",
        "/echo",
        [
            ("Connection", "close, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "x"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "h2c"),
            ("X-App", "1"),
        ],
        b"{}",
    )
    response = await exchange(setup.port, raw)
    assert response is not None and response.status == 200, response
    [seen] = setup.stable.received
    headers = lower_keys(seen.headers)
    for name in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "proxy-connection"):
        assert name not in headers, f"{name} reached the upstream: {headers}"
    assert "upgrade" not in headers, headers
    # The HTTP client may add its own Connection header; the client's must not pass through.
    assert "secret" not in headers.get("connection", "").lower(), headers
    assert "close" not in headers.get("connection", "").lower(), headers
    assert headers["x-app"] == "1"


async def _hop_by_hop_reply(request: web.Request) -> web.StreamResponse:
    return web.Response(
        text="upstream",
        headers={
            "Connection": "X-Up-Hop",
            "X-Up-Hop": "1",
            "Keep-Alive": "timeout=9",
            "X-Splitgate-Track": "forged",
            "X-Splitgate-Version": "forged",
            "X-Request-Id": "upstream-id",
            "X-Kept": "yes",
        },
    )


async def test_hop_by_hop_and_forged_response_headers_are_not_relayed(
    start_recorder: StartRecorder, start_proxy: StartProxy
) -> None:
    stable, _, port = await proxy_to_recorders(start_recorder, start_proxy, _hop_by_hop_reply)
    response = await exchange(port, request("GET", "/anything", [("X-Request-Id", "client-id")]))
    assert response is not None and response.status == 200, response
    assert response.body == b"upstream"
    headers = response.headers
    assert "X-Up-Hop" not in headers
    assert "Keep-Alive" not in headers
    assert "x-up-hop" not in headers.get("Connection", "").lower()
    assert headers.getall("X-Splitgate-Track") == ["stable"]
    assert headers.getall("X-Splitgate-Version") == ["v1.0.0"]
    assert headers.getall("X-Request-Id") == ["client-id"]
    assert headers["X-Upstream-Request-Id"] == "upstream-id"
    assert headers["X-Kept"] == "yes"
    assert len(stable.seen) == 1


# --------------------------------------------------------------------------------------------
# 6. The trusted track override
# --------------------------------------------------------------------------------------------

OVERRIDE_HEADERS = ("x-splitgate-track", "x-splitgate-internal")


def assert_override_headers_consumed(setup: Setup) -> None:
    for seen in setup.received():
        headers = lower_keys(seen.headers)
        for name in OVERRIDE_HEADERS:
            assert name not in headers, f"{name} reached the upstream: {headers}"


@pytest.mark.parametrize(
    "secret_header", [None, "", "wrong", "S3CRET", "s3cre", "s3cret2"], ids=repr
)
async def test_override_without_the_secret_is_ignored_and_stripped(
    start_upstream: StartUpstream, start_proxy: StartProxy, secret_header: str | None
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=0, secret=SECRET)
    headers = [("X-Splitgate-Track", "canary"), ("x-user-id", "u1")]
    if secret_header is not None:
        headers.append(("X-Splitgate-Internal", secret_header))
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    assert response.headers["X-Splitgate-Track"] == "stable"
    assert len(setup.stable.received) == 1
    assert setup.canary.received == []
    assert_override_headers_consumed(setup)


async def test_override_with_the_secret_picks_the_track_and_is_stripped(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=0, secret=SECRET)
    headers = [("X-Splitgate-Track", "canary"), ("X-Splitgate-Internal", SECRET)]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    assert response.headers["X-Splitgate-Track"] == "canary"
    assert response.json()["version"] == "v1.1.0"
    assert setup.stable.received == []
    assert len(setup.canary.received) == 1
    assert_override_headers_consumed(setup)


async def test_override_is_ignored_when_the_proxy_has_no_secret(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=0, secret=None)
    headers = [("X-Splitgate-Track", "canary"), ("X-Splitgate-Internal", "")]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    assert response.headers["X-Splitgate-Track"] == "stable"
    assert_override_headers_consumed(setup)


async def test_spoofed_override_does_not_move_the_split(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, canary_weight=10, secret=SECRET)
    users = [f"user-{i}" for i in range(1000)]
    tracks: list[str] = []

    async def run(share: list[str]) -> None:
        async with connect(setup.port) as conn:  # keep-alive: one connection, many requests
            for user in share:
                headers = [("X-Splitgate-Track", "canary"), ("x-user-id", user)]
                await conn.send(request("GET", "/echo", headers))
                response = await conn.response()
                assert response is not None and response.status == 200, response
                tracks.append(response.headers["X-Splitgate-Track"])

    await asyncio.gather(*(run(users[i::8]) for i in range(8)))
    assert len(tracks) == 1000
    share = tracks.count("canary") / len(tracks) * 100
    assert 7 <= share <= 13, f"canary share {share:.1f} % with a spoofed override"
    assert len(setup.canary.received) == tracks.count("canary")
    assert_override_headers_consumed(setup)


async def test_override_naming_an_unknown_track_is_a_400_naming_the_header(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy, secret=SECRET)
    headers = [("X-Splitgate-Track", "nope"), ("X-Splitgate-Internal", SECRET)]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    error = assert_json_error(response, 400)
    assert str(error["param"]).lower() == "x-splitgate-track"
    assert setup.received() == []


# --------------------------------------------------------------------------------------------
# 11. X-Forwarded-For
# --------------------------------------------------------------------------------------------


async def test_spoofed_forwarded_for_gets_the_peer_appended(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    headers = [("X-Forwarded-For", "203.0.113.9, 10.0.0.1")]
    response = await exchange(setup.port, request("POST", "/echo", headers, b"{}"))
    assert response is not None and response.status == 200, response
    [seen] = setup.stable.received
    assert lower_keys(seen.headers)["x-forwarded-for"] == "203.0.113.9, 10.0.0.1, 127.0.0.1"


async def test_forwarded_for_is_the_peer_when_absent(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    setup = await proxy_to_fakes(start_upstream, start_proxy)
    response = await exchange(setup.port, request("POST", "/echo", body=b"{}"))
    assert response is not None and response.status == 200, response
    [seen] = setup.stable.received
    assert lower_keys(seen.headers)["x-forwarded-for"] == "127.0.0.1"


# --------------------------------------------------------------------------------------------
# 12. Redirects and cookies pass through; nothing is shared between clients
# --------------------------------------------------------------------------------------------


async def _redirect_with_cookie(request: web.Request) -> web.StreamResponse:
    return web.Response(
        status=302,
        headers={"Location": "http://127.0.0.1:1/internal", "Set-Cookie": "a=1"},
    )


async def test_redirect_is_relayed_and_cookies_are_not_shared(
    start_recorder: StartRecorder, start_proxy: StartProxy
) -> None:
    stable, _, port = await proxy_to_recorders(start_recorder, start_proxy, _redirect_with_cookie)
    first = await exchange(port, request("GET", "/login", [("x-user-id", "alice")]))
    assert first is not None and first.status == 302, first
    assert first.headers["Location"] == "http://127.0.0.1:1/internal"
    assert first.headers.getall("Set-Cookie") == ["a=1"]
    second = await exchange(port, request("GET", "/login", [("x-user-id", "bob")]))
    assert second is not None and second.status == 302, second
    assert [s.target for s in stable.seen] == ["/login", "/login"], "the proxy followed a redirect"
    for seen in stable.seen:
        assert "Cookie" not in seen.headers, seen.headers
