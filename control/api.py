"""The admin HTTP API: routes, weights, tracks, upstreams, audit; bearer-token auth.

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
from pydantic import ValidationError
from redis.exceptions import RedisError

from config import jsonsafe
from config.durations import parse_duration
from config.environments import EnvironmentsFile
from config.feedback import Feedback, feedback_fields, verify
from config.keys import StoredDocument
from config.loader import reason
from config.metrics import WINDOW_S, WINDOW_TTL_S, TrackWindow, field_name
from config.schema import Route, RoutingDocument
from config.srm import sample_ratio
from control import edits
from control.edits import EditError, FieldError
from control.health_api import OPEN_PATHS
from control.openapi import OPENAPI, QUERY_NAMES
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
    if request.path not in OPEN_PATHS:
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
    taken = QUERY_NAMES.get((request.method, resource.canonical)) if resource else None
    return [] if taken is None else sorted(set(request.query) - taken)


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise EditError([FieldError("body", f"not valid JSON ({exc})")], status=400) from None


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


async def list_routes(request: web.Request) -> web.Response:
    document = await current(request)
    return json_response(
        {
            "generation": document.generation,
            "digest": document.digest,
            "written_at": document.written_at,
            "written_by": document.written_by,
            "routes": [r.model_dump() for r in document.routes],
            **await replicas(request.app[STORE], document.generation),
        },
        headers={"ETag": f'"{document.generation}"'},
    )


async def get_route(request: web.Request) -> web.Response:
    """The route, the replicas' generations, and its sample-ratio status over the last 5 min."""
    document = await current(request)
    route = edits.find_route(document, request.match_info["route"])
    first, _, merged = await request.app[WINDOWS].read(route.name, 300)
    return json_response(
        {
            "generation": document.generation,
            "digest": document.digest,
            "route": route.model_dump(),
            **await replicas(request.app[STORE], document.generation),
            "sample_ratio": _sample_ratio(document, route, first, merged),
        },
        headers={"ETag": f'"{document.generation}"'},
    )


async def put_weights(request: web.Request) -> web.Response:
    route = request.match_info["route"]
    body = await read_json(request)
    if not isinstance(body, dict) or "weights" not in body:
        raise EditError(
            [FieldError("weights", 'required: {"weights": {"stable": 90, "canary": 10}}')]
        )
    unknown = set(body) - {"weights", "reason"}
    if unknown:
        raise EditError([FieldError(name, "unknown field") for name in sorted(unknown)])
    actor, reason = actor_and_reason(request, body)
    return await write(
        request,
        route,
        lambda doc: edits.set_weights(doc, route, body["weights"]),
        Change(actor, reason, "set_weights", f"routes/{route}/weights"),
    )


async def put_track(request: web.Request) -> web.Response:
    route, track = request.match_info["route"], request.match_info["track"]
    body = await read_json(request)
    actor, reason = actor_and_reason(request, body)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "reason"}
    return await write(
        request,
        route,
        lambda doc: edits.put_track(doc, route, track, body),
        Change(actor, reason, "put_track", f"routes/{route}/tracks/{track}"),
    )


async def delete_track(request: web.Request) -> web.Response:
    route, track = request.match_info["route"], request.match_info["track"]
    actor, reason = actor_and_reason(request, {"reason": request.query.get("reason", "")})
    return await write(
        request,
        route,
        lambda doc: edits.delete_track(doc, route, track),
        Change(actor, reason, "delete_track", f"routes/{route}/tracks/{track}"),
    )


async def add_upstream(request: web.Request) -> web.Response:
    route, track = request.match_info["route"], request.match_info["track"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise EditError([FieldError("url", 'required: {"url": "http://host:port"}')])
    actor, reason = actor_and_reason(request, body)
    return await write(
        request,
        route,
        lambda doc: edits.add_upstream(doc, route, track, body.get("url")),
        Change(actor, reason, "add_upstream", f"routes/{route}/tracks/{track}/upstreams"),
    )


async def remove_upstream(request: web.Request) -> web.Response:
    route, track = request.match_info["route"], request.match_info["track"]
    url = request.query.get("url")
    if url is None:
        raise EditError([FieldError("url", "required query parameter: ?url=http://host:port")])
    actor, reason = actor_and_reason(request, {"reason": request.query.get("reason", "")})
    return await write(
        request,
        route,
        lambda doc: edits.remove_upstream(doc, route, track, url),
        Change(actor, reason, "remove_upstream", f"routes/{route}/tracks/{track}/upstreams"),
    )


async def route_metrics(request: web.Request) -> web.Response:
    """Fleet-wide counts of one route over ``?window=`` (10 s to 6 h, default 5m), per track."""
    name = request.match_info["route"]
    document = await current(request)
    route = edits.find_route(document, name)
    raw = request.query.get("window", "5m")
    try:
        span = parse_duration(raw)
    except ValueError as exc:
        raise EditError([FieldError("window", str(exc))], status=400) from None
    if not WINDOW_S <= span <= WINDOW_TTL_S:
        raise EditError(
            [FieldError("window", f"between {WINDOW_S} s and {WINDOW_TTL_S // 3600} h")], status=400
        )
    first, end, merged = await request.app[WINDOWS].read(name, span)
    weights = {t.name: t.weight for t in route.tracks}
    tracks = [
        {"track": track, "version": version, "weight": weights.get(track), **counts.summary()}
        for (track, version), counts in sorted(merged.items())
    ]
    ratio = _sample_ratio(document, route, first, merged)
    return json_response(
        {
            "route": name,
            "window_s": end - first,
            "from": first,
            "to": end,
            "generation": document.generation,
            "tracks": tracks,
            "sample_ratio": ratio,
        }
    )


def _sample_ratio(
    document: StoredDocument, route: Route, first: int, merged: dict[tuple[str, str], TrackWindow]
) -> dict[str, object]:
    observed: dict[str, int] = {}
    for (track, _), counts in merged.items():
        observed[track] = observed.get(track, 0) + counts.assigned
    ratio = sample_ratio(observed, {t.name: t.weight for t in route.tracks}).as_dict()
    # Weights that changed inside the window make any split look wrong: report, don't judge.
    ratio["judged"] = document.written_at <= first
    ratio["mismatch"] = bool(ratio["mismatch"]) and ratio["judged"]
    return ratio


async def feedback(request: web.Request) -> web.Response:
    """Quality signals for an answered request, counted for the track and version that gave it."""
    key = request.app[SIGNING_KEY]
    if not key:
        return error(
            503,
            "feedback_not_configured",
            "set SPLITGATE_SIGNING_KEY (the proxies' too) to accept feedback",
        )
    body = await read_json(request)
    try:
        received = Feedback.model_validate(body)
    except ValidationError as exc:
        raise EditError(_feedback_errors(exc)) from None
    source = verify(key, received.request_id)
    if source is None:
        raise EditError(
            [
                FieldError(
                    "request_id",
                    "not an id issued by splitgate (forged, or signed with another key)",
                )
            ]
        )
    route, track, version = source
    fields = {
        field_name(track, version, name): value for name, value in feedback_fields(received).items()
    }
    await request.app[WINDOWS].add(route, fields)
    return json_response(
        {"accepted": True, "route": route, "track": track, "version": version}, status=202
    )


def _feedback_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(".".join(str(p) for p in e["loc"]) or "body", reason(e))
        for e in exc.errors(include_url=False)
    ]


async def audit(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise EditError([FieldError("limit", "a number from 1 to 1000")], status=400)
    return json_response({"records": await request.app[STORE].audit(int(raw))})


async def openapi(request: web.Request) -> web.Response:
    return json_response(OPENAPI)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})
