"""Header rules at the proxy boundary, both directions.

Hop-by-hop headers (RFC 9110 §7.6.1) and every header the ``Connection`` header names belong to
one connection and are never forwarded. The override headers are consumed here and never
reach the upstream. Upstream ``X-Splitgate-*`` headers are dropped so an upstream cannot
impersonate the proxy's own stamps, and an upstream ``X-Request-Id`` is kept as
``X-Upstream-Request-Id`` because ours names the request end to end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Rebuilt by the proxy or by the HTTP client for the upstream connection.
_REQUEST_REBUILT = frozenset(
    {"host", "content-length", "expect", "x-forwarded-for", "via", "x-request-id"}
)
_RESPONSE_REBUILT = frozenset({"content-length", "x-request-id"})

VIA = "1.1 splitgate"


_PLAIN_CONNECTION = frozenset({"keep-alive", "close", "Keep-Alive", "Close", "keep-alive, close"})
"""``Connection`` values that name no other header (what nearly every client sends)."""
_NO_TOKENS: frozenset[str] = frozenset()
_RESPONSE_DROP = HOP_BY_HOP | _RESPONSE_REBUILT


def connection_tokens(headers: Mapping[str, str]) -> frozenset[str]:
    """Header names listed in ``Connection`` (lower-case); empty when there are none."""
    return _tokens(headers.get("connection"))


def _tokens(value: str | None) -> frozenset[str]:
    if not value or value in _PLAIN_CONNECTION:
        return _NO_TOKENS  # keep-alive and close are hop-by-hop already
    return frozenset(token.strip().lower() for token in value.split(",") if token.strip())


class RequestHeaderFilter:
    """Builds the header list sent upstream; one instance per process."""

    __slots__ = ("_drop",)

    def __init__(self, consumed: Iterable[str]) -> None:
        self._drop = HOP_BY_HOP | _REQUEST_REBUILT | {name.lower() for name in consumed}

    def upstream_headers(
        self,
        headers: Mapping[str, str],
        items: Iterable[tuple[str, str]],
        peer: str | None,
        request_id: str,
        content_length: int | None,
    ) -> list[tuple[str, str]]:
        drop = self._drop
        named = _tokens(headers.get("connection"))
        if named:
            drop = drop | named
        out = [(k, v) for k, v in items if k.lower() not in drop]
        prior = headers.get("x-forwarded-for")
        if peer is not None:
            out.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
        elif prior:
            out.append(("X-Forwarded-For", prior))
        via = headers.get("via")
        out.append(("Via", f"{via}, {VIA}" if via else VIA))
        out.append(("X-Request-Id", request_id))
        if content_length is not None:
            out.append(("Content-Length", str(content_length)))
        return out


def response_headers(
    items: Iterable[tuple[str, str]], connection: str | None
) -> list[tuple[str, str]]:
    """The upstream's response headers that may reach the client."""
    drop = _RESPONSE_DROP
    named = _tokens(connection)
    if named:
        drop = drop | named
    out: list[tuple[str, str]] = []
    for key, value in items:
        lower = key.lower()
        if lower in drop or lower.startswith("x-splitgate-"):
            if lower == "x-request-id":
                out.append(("X-Upstream-Request-Id", value))
            continue
        out.append((key, value))
    return out
