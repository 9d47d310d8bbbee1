"""Writing one part of the routing document from the admin API (a flag, a segment, the
attributes): read, edit, compare-and-set, audited with who and why, ``If-Match`` answered
with 412. The routes' own writes are ``control.api.write``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from config.schema import RoutingDocument
from control.api import (
    STORE,
    WRITE_ATTEMPTS,
    Edit,
    actor_and_reason,
    current,
    error,
    json_response,
)
from control.edits import EditError, FieldError
from control.store import Change, Stale

Part = Callable[[RoutingDocument], Any]


async def write(
    request: web.Request, edit: Edit, change: Change, key: str, part: Part
) -> tuple[web.Response, bool]:
    """``control.api.write`` for a part of the document other than a route: ``part`` picks
    what the audit records and the answer returns under ``key``. Also says if it wrote."""
    store = request.app[STORE]
    pinned = request.headers.get("If-Match")
    if pinned is not None and not pinned.strip('"').isdigit():
        raise EditError([FieldError("If-Match", "a generation number")], status=400)
    for _ in range(WRITE_ATTEMPTS):
        document = await current(request)
        if pinned is not None and int(pinned.strip('"')) != document.generation:
            return _stale(document.generation), False
        new = edit(document)
        try:
            stored = await store.write(
                new, document.generation, change, before=part(document), after=part(new)
            )
        except Stale as exc:
            if pinned is not None:
                return _stale(exc.current), False
            continue
        answer = {"generation": stored.generation, key: part(stored)}
        return json_response(answer, headers={"ETag": f'"{stored.generation}"'}), True
    return error(409, "conflict", "the routing document kept changing; try again"), False


def _stale(generation: int) -> web.Response:
    return error(412, "stale_generation", f"the routing document is at generation {generation}")


def change_of(request: web.Request, body: Any, action: str, target: str) -> Change:
    """The audit's who and why: ``reason`` from a JSON body, else from ``?reason=``."""
    if not (isinstance(body, dict) and "reason" in body):
        body = {"reason": request.query.get("reason", "")}
    actor, reason = actor_and_reason(request, body)
    return Change(actor, reason, action, target)


def without_reason(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "reason"} if isinstance(body, dict) else body
