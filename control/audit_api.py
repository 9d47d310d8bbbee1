"""``GET /v1/audit``: who changed the routing document, when, from what to what, and why."""

from __future__ import annotations

from aiohttp import web

from control.api import STORE, json_response
from control.api_table import Operation
from control.edits import EditError, FieldError
from control.openapi_parts import LIMIT_QUERY


async def audit(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise EditError([FieldError("limit", "a number from 1 to 1000")], status=400)
    return json_response({"records": await request.app[STORE].audit(int(raw))})


OPERATIONS = (
    Operation(
        "GET",
        "/v1/audit",
        audit,
        "The newest audit records (actor, before, after, reason, time), newest first",
        ok="The records",
        errors=(400,),
        params=(LIMIT_QUERY,),
    ),
)
