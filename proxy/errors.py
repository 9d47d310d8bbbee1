"""Errors the proxy itself answers, as JSON in the OpenAI error shape.

``{"error": {"message": ..., "type": ..., "param": null, "code": ...}}``, so the official
SDKs raise their usual typed exceptions (``APIStatusError`` and subclasses) with our message.
"""

from __future__ import annotations

import json

from aiohttp import web

_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    502: "upstream_error",
    503: "upstream_error",
    504: "timeout_error",
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    close: bool = False,
) -> web.Response:
    """A JSON error answered by the proxy; ``close`` ends the connection after it."""
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPES.get(status, "proxy_error"),
                "param": param,
                "code": code,
            }
        }
    ).encode()
    response = web.Response(status=status, body=body, content_type="application/json")
    if close:
        response.force_close()
    return response
