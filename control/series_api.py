"""``GET /v1/routes/{route}/series``: the dashboard's charts, per version, over the last 5
minutes to 6 hours (``control.series`` buckets the fleet's windows)."""

from __future__ import annotations

from aiohttp import web

from config.metrics import WINDOW_S
from control import edits
from control.api import WINDOWS, current, json_response, window_param
from control.api_table import Operation
from control.series import MAX_POINTS, SERIES, bucket, step_for

MIN_SPAN_S = 60


async def route_series(request: web.Request) -> web.Response:
    name = request.match_info["route"]
    document = await current(request)
    route = edits.find_route(document, name)
    span = int(window_param(request, MIN_SPAN_S))
    windows = request.app[WINDOWS]
    now = windows.now()
    step = step_for(span)
    last = int(now // WINDOW_S) * WINDOW_S
    # Buckets start at multiples of the step, so a point keeps its value from poll to poll.
    first = int(now // step) * step - (-(-span // step) - 1) * step
    series = bucket(await windows.raw_each(name, first, last), step, now)
    tracks: dict[str, list[str]] = {}
    for track in route.tracks:
        tracks.setdefault(track.version, []).append(track.name)
    return json_response(
        {
            "route": name,
            "window_s": span,
            "step_s": step,
            "from": first,
            "to": last + WINDOW_S,
            "tracks": tracks,
            **series,
        }
    )


NUMBERS = {"type": "array", "items": {"type": ["number", "null"]}}
SERIES_SCHEMA = {
    "type": "object",
    "required": ["route", "window_s", "step_s", "from", "to", "times", "versions", "tracks"],
    "properties": {
        "route": {"type": "string"},
        "window_s": {"type": "integer"},
        "step_s": {"type": "integer"},
        "from": {"type": "integer"},
        "to": {"type": "integer"},
        "times": {"type": "array", "items": {"type": "integer"}},
        "tracks": {
            "type": "object",
            "description": "version → the tracks that serve it now",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "versions": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    **dict.fromkeys(SERIES, NUMBERS),
                    "error_rate_by_class": {"type": "object", "additionalProperties": NUMBERS},
                },
            },
        },
    },
}

OPERATIONS = (
    Operation(
        "GET",
        "/v1/routes/{route}/series",
        route_series,
        f"Fleet-wide time series per version over a window (at most {MAX_POINTS} points): "
        "requests/s, error rate (and by class), latency and time to first token p50/p95 (ms), "
        "tokens per request, hallucination rate, satisfaction",
        ok="One value per bucket of `step_s` seconds starting at each of `times`",
        returns=SERIES_SCHEMA,
        errors=(400, 404),
        params=(
            {
                "name": "window",
                "in": "query",
                "schema": {"type": "string", "default": "5m"},
                "description": "1m to 6h, e.g. 5m, 1h, 6h",
            },
        ),
    ),
)
