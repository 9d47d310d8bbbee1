"""``GET /v1/routes/{route}/shadow/pairs``: the shadow pairs the proxies kept for a route
(``config.shadow``), newest first, a page at a time, for a person or an offline judge.

A page ends with ``next``, the ``before`` of the following (older) page. An entry that does
not parse (written by another version, or damaged) is skipped and counted in
``unreadable``: one bad pair never hides the others.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from config.base import Model
from config.shadow import ShadowPair
from control import edits
from control.api import current, error, json_response
from control.api_table import Operation
from control.edits import EditError, FieldError
from control.shadow_pairs import STREAM_ID, ShadowPairs, valid_id

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
