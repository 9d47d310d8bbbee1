"""What every handler of the admin HTTP API shares: bearer-token auth, JSON errors, writes.

The operations themselves are declared in their resources' modules (``control.api_table``):
routes (``routes_api``), rollouts, flags, segments, feedback, audit and health.

Every call but ``/healthz`` needs ``Authorization: Bearer <token>`` (compared in constant time).
Errors are JSON: ``{"error": {"message", "type", "code", "param"}, "errors": [{"field",
"reason"}]}``. A refused change changes nothing. Writes are read–edit–compare-and-set; a
concurrent writer makes the API retry the edit on the fresh document, unless the caller sent
``If-Match: <generation>``, which then answers 412.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from config import jsonsafe
from config.durations import parse_duration
from config.environments import EnvironmentsFile
from config.keys import StoredDocument
from config.metrics import WINDOW_TTL_S
from config.schema import RoutingDocument
from control.api_table import PUBLIC, QUERIES
from control.edits import EditError, FieldError
from control.rollouts import Rollouts
from control.store import Change, DocumentStore, Stale
from control.windows import WindowReader

json_response = partial(web.json_response, dumps=jsonsafe.dumps)
"""Strict JSON answers: no NaN or Infinity (``config.jsonsafe``)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Edit = Callable[[RoutingDocument], RoutingDocument]

STORE = web.AppKey("store", DocumentStore)
WINDOWS = web.AppKey("windows", WindowReader)
SIGNING_KEY = web.AppKey("signing_key", bytes)
ROLLOUTS = web.AppKey("rollouts", Rollouts)
ENVIRONMENTS = web.AppKey("environments", EnvironmentsFile)
TOKEN = web.AppKey("token", str)
WRITE_ATTEMPTS = 3
_CODES = {404: "not_found", 405: "method_not_allowed", 503: "not_seeded"}
MAX_BODY = 1024 * 1024


def error(
    status: int, code: str, message: str, errors: list[FieldError] | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "error": {
            "message": message,
            "type": "invalid_request_error" if status < 500 else "server_error",
            "code": code,
            "param": errors[0].field if errors else None,
        }
    }
    if errors:
        body["errors"] = [{"field": e.field, "reason": e.reason} for e in errors]
    return json_response(body, status=status)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication, and every failure turned into a JSON error."""
    if request.path not in request.app.get(PUBLIC, ()):
        given = request.headers.get("Authorization", "")
        expected = "Bearer " + request.app[TOKEN]
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return error(401, "unauthorized", "missing or wrong bearer token")
    unknown = _unknown_query(request)
    if unknown:
        return error(
            400,
            "unknown_parameter",
            f"unknown query parameter {unknown[0]!r}",
            [FieldError(name, "unknown query parameter (see /openapi.json)") for name in unknown],
        )
    try:
        return await handler(request)
    except EditError as exc:
        return error(
            exc.status, "validation_error" if exc.status == 422 else "refused", str(exc), exc.errors
        )
    except (RedisError, OSError) as exc:
        return error(503, "redis_unavailable", f"the routing store is unreachable: {exc}")
    except web.HTTPRequestEntityTooLarge:
        return error(413, "request_too_large", f"the request body is larger than {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            answer = error(exc.status, _CODES.get(exc.status, "http_error"), exc.reason)
            if "Allow" in exc.headers:
                answer.headers["Allow"] = exc.headers["Allow"]  # 405 names the methods it takes
            return answer
        raise


def _unknown_query(request: web.Request) -> list[str]:
    """Query parameters the operation does not take: a typo (``?windw=``) is refused, never
    silently ignored."""
    if not request.query:
        return []
    resource = request.match_info.route.resource
    queries = request.app.get(QUERIES, {})
    taken = queries.get((request.method, resource.canonical)) if resource else None
    return [] if taken is None else sorted(set(request.query) - taken)


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise EditError([FieldError("body", f"not valid JSON ({exc})")], status=400) from None


def window_param(request: web.Request, low_s: float) -> float:
    """``?window=`` (default 5m): a duration from ``low_s`` to the windows' TTL (6 h); 400
    naming ``window`` otherwise."""
    raw = request.query.get("window", "5m")
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise EditError([FieldError("window", str(exc))], status=400) from None
    if not low_s <= seconds <= WINDOW_TTL_S:
        raise EditError(
            [FieldError("window", f"between {low_s:g} s and {WINDOW_TTL_S // 3600} h")],
            status=400,
        )
    return seconds


async def current(request: web.Request) -> StoredDocument:
    document = await request.app[STORE].read()
    if document is None:
        raise web.HTTPServiceUnavailable(reason="the routing document is not seeded yet")
    return document


def actor_and_reason(request: web.Request, body: Any) -> tuple[str, str]:
    actor = request.headers.get("X-Splitgate-Actor", "admin")[:128]
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    return actor, str(reason)[:1000]


Part = Callable[[RoutingDocument], Any]
"""What a write audits and answers with: the part of the document it changes."""


async def write(request: web.Request, route: str, edit: Edit, change: Change) -> web.Response:
    """Read, edit, compare-and-set one route; ``If-Match`` pins the generation the caller saw."""

    def part(document: RoutingDocument) -> Any:
        found = document.route(route)
        return None if found is None else found.model_dump()

    return (await write_part(request, edit, change, "route", part))[0]


async def write_part(
    request: web.Request, edit: Edit, change: Change, key: str, part: Part
) -> tuple[web.Response, bool]:
    """Read, edit, compare-and-set; ``If-Match`` pins the generation the caller saw. ``part``
    picks what the audit records (before and after) and the answer returns under ``key``.
    Also says whether it wrote."""
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


async def replicas(store: DocumentStore, generation: int) -> dict[str, Any]:
    """Each live replica's ack, and whether all of them route by ``generation`` already."""
    acks = sorted((await store.acks()).items())
    return {
        "replicas": {name: ack.model_dump() for name, ack in acks},
        # Every live replica applies this very document (generation and digest), not merely
        # some document with that generation number (one lost in a Redis failover).
        "converged": await store.converged(generation, dict(acks)),
    }
