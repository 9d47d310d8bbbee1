"""Header rules at the boundary, both directions (RFC 9110 §7.6.1)."""

from __future__ import annotations

from multidict import CIMultiDict

from proxy.headers import RequestHeaderFilter, response_headers


def outgoing(
    headers: list[tuple[str, str]], peer: str | None = "10.1.1.1", length: int | None = None
) -> list[tuple[str, str]]:
    filt = RequestHeaderFilter(("x-splitgate-track", "x-splitgate-internal"))
    multi = CIMultiDict(headers)
    return filt.upstream_headers(multi, multi.items(), peer, "rid-1", length)


def names(items: list[tuple[str, str]]) -> list[str]:
    return [k.lower() for k, _ in items]


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    out = outgoing(
        [
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Authorization", "secret"),
            ("Upgrade", "h2c"),
            ("Host", "evil.example"),
            ("Content-Length", "12"),
            ("Expect", "100-continue"),
            ("Authorization", "Bearer sk-1"),
            ("X-App", "a"),
            ("X-App", "b"),
        ]
    )
    assert names(out) == [
        "authorization",
        "x-app",
        "x-app",
        "x-forwarded-for",
        "via",
        "x-request-id",
    ]
    assert ("X-App", "b") in out


def test_override_headers_never_go_upstream() -> None:
    out = outgoing([("X-Splitgate-Track", "canary"), ("x-splitgate-internal", "s3cret")])
    assert "x-splitgate-track" not in names(out)
    assert "x-splitgate-internal" not in names(out)


def test_forwarding_headers_are_appended() -> None:
    out = dict(
        outgoing(
            [("X-Forwarded-For", "203.0.113.9"), ("Via", "1.0 edge"), ("X-Request-Id", "client")]
        )
    )
    assert out["X-Forwarded-For"] == "203.0.113.9, 10.1.1.1"
    assert out["Via"] == "1.0 edge, 1.1 splitgate"
    assert out["X-Request-Id"] == "rid-1"


def test_streamed_body_keeps_its_length() -> None:
    assert ("Content-Length", "4096") in outgoing([], length=4096)
    assert "content-length" not in names(outgoing([("Content-Length", "5")]))


def test_response_direction() -> None:
    upstream = [
        ("Connection", "X-Up-Hop"),
        ("X-Up-Hop", "1"),
        ("Keep-Alive", "timeout=9"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "10"),
        ("X-Splitgate-Track", "forged"),
        ("X-Request-Id", "upstream-id"),
        ("Set-Cookie", "a=1"),
        ("Content-Encoding", "gzip"),
    ]
    out = response_headers(upstream, "X-Up-Hop")
    assert out == [
        ("X-Upstream-Request-Id", "upstream-id"),
        ("Set-Cookie", "a=1"),
        ("Content-Encoding", "gzip"),
    ]
