"""A route's shadow (``config.shadow``): ``PUT``/``DELETE /v1/routes/{route}/shadow`` set and
remove its mirroring by hand (a canary's shadow phase does it by itself), and
``GET /v1/routes/{route}/shadow/pairs`` reads the pairs the proxies kept, newest first, a page
at a time, for a person or an offline judge.

A page ends with ``next``, the ``before`` of the following (older) page. An entry that does
not parse (written by another version, or damaged) is skipped and counted in
``unreadable``: one bad pair never hides the others.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from config.base import Model
from config.shadow import Shadow, ShadowPair
from control import edits
from control.api import actor_and_reason, current, error, json_response, read_json, write
from control.api_table import Operation
from control.edits import EditError, FieldError
from control.openapi_parts import REASON_PARAM, reasoned, write_op
from control.shadow_pairs import STREAM_ID, ShadowPairs, valid_id
from control.store import Change

PAIRS = web.AppKey("shadow_pairs", ShadowPairs)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class PairsPage(Model):
    """A page of a route's shadow pairs, newest first."""

    route: str
    pairs: list[ShadowPair]
    """Each with ``id``, its position in the route's stream."""
    unreadable: int = Field(ge=0)
    """Entries of this page's span skipped because they do not parse."""
    next: str | None
    """Pass as ``before`` for the older pairs; null when this page reaches the oldest."""


async def put_shadow(request: web.Request) -> web.Response:
    """Mirror the route to a track: the body is the route's ``shadow`` (and a ``reason``)."""
    route = request.match_info["route"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise EditError(
            [FieldError("shadow", 'an object, e.g. {"track": "canary", "percent": 10}')]
        )
    actor, reason = actor_and_reason(request, body)
    shadow = {k: v for k, v in body.items() if k != "reason"}
    return await write(
        request,
        route,
        lambda doc: edits.set_shadow(doc, route, shadow),
        Change(actor, reason, "set_shadow", f"routes/{route}/shadow"),
    )


async def delete_shadow(request: web.Request) -> web.Response:
    """Stop mirroring the route (nothing changes if it does not mirror)."""
    route = request.match_info["route"]
    actor, reason = actor_and_reason(request, {"reason": request.query.get("reason", "")})
    return await write(
        request,
        route,
        lambda doc: edits.set_shadow(doc, route, None),
        Change(actor, reason, "delete_shadow", f"routes/{route}/shadow"),
    )


async def list_pairs(request: web.Request) -> web.Response:
    """The route's pairs older than ``before`` (the newest without it), at most ``limit``."""
    name = request.match_info["route"]
    limit = _limit(request.query.get("limit"))
    before = request.query.get("before")
    if before is not None and not valid_id(before):
        raise EditError(
            [FieldError("before", "a pair's id as listed (e.g. 1718000000000-0)")], status=400
        )
    edits.find_route(await current(request), name)
    pairs = request.app.get(PAIRS)
    if pairs is None:
        return error(503, "shadow_not_configured", "this control plane does not read pairs")
    page = await pairs.page(name, limit, before)
    answer = PairsPage(
        route=name, pairs=list(page.pairs), unreadable=page.unreadable, next=page.next
    )
    return json_response(answer.model_dump(mode="json"))


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise EditError([FieldError("limit", f"a number from 1 to {MAX_LIMIT}")], status=400)
    return int(raw)


OPERATIONS = (
    write_op(
        "PUT",
        "/v1/routes/{route}/shadow",
        put_shadow,
        "Mirror a share of the route's POST requests to one of its tracks (not the baseline), "
        "in the background: track, percent, limits, whether pairs keep the answers' text",
        reasoned(Shadow),
        413,
    ),
    write_op(
        "DELETE",
        "/v1/routes/{route}/shadow",
        delete_shadow,
        "Stop mirroring the route",
        None,
        params=(REASON_PARAM,),
    ),
    Operation(
        "GET",
        "/v1/routes/{route}/shadow/pairs",
        list_pairs,
        "The route's shadow pairs (the primary's answer and the shadow's, for one mirrored "
        "request), newest first; page with `before` = the previous page's `next`",
        ok="A page of pairs; entries that do not parse are skipped and counted in `unreadable`",
        returns=PairsPage,
        errors=(400, 404),
        params=(
            {
                "name": "limit",
                "in": "query",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT,
                },
            },
            {
                "name": "before",
                "in": "query",
                "schema": {"type": "string", "pattern": STREAM_ID.pattern},
                "description": "Only pairs older than this id (a previous page's `next`).",
            },
        ),
    ),
)
