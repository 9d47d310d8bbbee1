"""The admin API's routes: the routing document, one route, its weights, tracks, upstreams and
fleet-wide metrics. Writes are read-edit-compare-and-set (``control.api.write``)."""

from __future__ import annotations

from aiohttp import web

from config.keys import StoredDocument
from config.metrics import WINDOW_S, TrackWindow
from config.schema import Route, Track
from config.srm import sample_ratio
from control import edits
from control.api import (
    STORE,
    WINDOWS,
    actor_and_reason,
    current,
    json_response,
    read_json,
    replicas,
    window_param,
    write,
)
from control.api_table import Operation
from control.edits import EditError, FieldError
from control.openapi_parts import REASON_PARAM, write_op
from control.store import Change


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
    span = window_param(request, WINDOW_S)
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


WEIGHTS_BODY = {
    "type": "object",
    "required": ["weights"],
    "properties": {
        "weights": {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100},
        },
        "reason": {"type": "string"},
    },
    "additionalProperties": False,
}
URL_QUERY = {"name": "url", "in": "query", "required": True, "schema": {"type": "string"}}
WINDOW_QUERY = {
    "name": "window",
    "in": "query",
    "schema": {"type": "string", "default": "5m"},
    "description": "10s to 6h, e.g. 30s, 5m, 1h",
}
TRACKS = "/v1/routes/{route}/tracks/{track}"

OPERATIONS = (
    Operation(
        "GET",
        "/v1/routes",
        list_routes,
        "The routing document, its generation, and each live replica's applied generation",
        ok="The document",
    ),
    Operation("GET", "/v1/routes/{route}", get_route, "One route", ok="The route", errors=(404,)),
    write_op(
        "PUT",
        "/v1/routes/{route}/weights",
        put_weights,
        "Set the weights of some or all tracks (percentages, two decimals at most, adding up to 100)",
        WEIGHTS_BODY,
        413,
    ),
    write_op("PUT", TRACKS, put_track, "Add a track or replace it", Track, 413),
    write_op(
        "DELETE",
        TRACKS,
        delete_track,
        "Remove a track (its weight must be 0)",
        None,
        params=(REASON_PARAM,),
    ),
    write_op(
        "POST",
        f"{TRACKS}/upstreams",
        add_upstream,
        "Add an upstream URL (http or https) to a track",
        {
            "type": "object",
            "required": ["url"],
            "properties": {"url": {"type": "string"}, "reason": {"type": "string"}},
        },
        413,
    ),
    write_op(
        "DELETE",
        f"{TRACKS}/upstreams",
        remove_upstream,
        "Remove an upstream URL from a track",
        None,
        params=(URL_QUERY, REASON_PARAM),
    ),
    Operation(
        "GET",
        "/v1/routes/{route}/metrics",
        route_metrics,
        "Fleet-wide counts per track over a window: requests, error rate by class, latency and "
        "TTFB p50/p95/p99 (ms, from merged histograms), tokens per request",
        ok="The counts",
        errors=(400, 404),
        params=(WINDOW_QUERY,),
    ),
)
