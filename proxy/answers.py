"""The proxy's own answers: refusals before routing, upstream failures, and the stamps.

Every error body is OpenAI-shaped JSON (``proxy.errors``); an answer that must not leave the
connection reusable (bad framing, a body not read) closes it.
"""

from __future__ import annotations

from aiohttp import HttpVersion11, web

from proxy.body import StreamedBody
from proxy.client import UpstreamError
from proxy.errors import error_response
from proxy.exchange import Exchange
from proxy.table import CompiledTrack


def reject_early(request: web.BaseRequest, path: str) -> web.Response | None:
    """Requests the proxy refuses before routing: tunnels, upgrades, path tricks."""
    if request.method == "CONNECT":
        return error_response(405, "method_not_allowed", "CONNECT is not supported", close=True)
    if request.version < HttpVersion11 and "transfer-encoding" in request.headers:
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing cannot be trusted.
        return error_response(
            400, "bad_framing", "Transfer-Encoding is not allowed in HTTP/1.0", close=True
        )
    upgrade = request.headers.get("upgrade")
    # h2c may be ignored (RFC 9113 §3.2 lets a server answer in HTTP/1.1); any other upgrade
    # would turn the connection into a tunnel, which this proxy never opens.
    if upgrade is not None and upgrade.strip().lower() != "h2c":
        return error_response(
            400, "upgrade_not_supported", "protocol upgrades are not supported", close=True
        )
    if "." in path or "%" in path or "\\" in path:
        for segment in path.split("/"):
            if segment.replace("%2e", ".").replace("%2E", ".") in (".", "..") or "\\" in segment:
                return error_response(
                    400, "bad_path", "dot segments and backslashes are not allowed in the path"
                )
    return None


def upstream_failure(
    exchange: Exchange, error: UpstreamError | None, streamed: StreamedBody | None
) -> web.Response:
    if streamed is not None and streamed.too_large:
        return too_large(None)
    if streamed is not None and streamed.timed_out:
        return error_response(
            408, "request_timeout", "the request body did not arrive in time", close=True
        )
    name = exchange.track.name if exchange.track is not None else "?"
    if error is None or error.kind == "connect":
        return error_response(
            502, "upstream_unreachable", f"cannot connect to an upstream of track {name!r}"
        )
    if error.kind == "timeout":
        return error_response(504, "upstream_timeout", f"track {name!r} did not answer in time")
    if error.kind == "protocol":
        return error_response(
            502, "bad_upstream_response", f"track {name!r} sent a malformed response"
        )
    return error_response(
        502, "upstream_disconnected", f"track {name!r} closed the connection before answering"
    )


def too_large(limit: int | None) -> web.Response:
    detail = f" (limit {limit} bytes)" if limit is not None else ""
    return error_response(
        413, "request_too_large", f"the request body is too large{detail}", close=True
    )


def abort(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """End the client's response without a clean end: flush what was sent, then close."""
    response.force_close()
    transport = request.transport
    if transport is not None:
        transport.close()


def stamp(
    response: web.StreamResponse, request_id: str, track: CompiledTrack | None, generation: int
) -> web.StreamResponse:
    headers = response.headers
    headers["X-Request-Id"] = request_id
    if track is not None:
        headers["X-Splitgate-Track"] = track.name
        headers["X-Splitgate-Version"] = track.version
    headers["X-Splitgate-Generation"] = str(generation)
    return response
