"""The admin API's OpenAPI 3.1 document, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from config.schema import Route, Track

_ERROR = {"$ref": "#/components/schemas/Error"}
_ROUTE_PARAM = {"name": "route", "in": "path", "required": True, "schema": {"type": "string"}}
_TRACK_PARAM = {"name": "track", "in": "path", "required": True, "schema": {"type": "string"}}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The generation the caller read; 412 if the document has moved on.",
}


def _responses(ok: str, *codes: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed request",
        401: "Missing or wrong bearer token",
        404: "No such route, track or upstream",
        409: "Refused: the change conflicts with the document",
        412: "If-Match names an old generation",
        413: "Body too large",
        422: "Invalid field: `errors` names each field and why",
        503: "Redis unreachable or not seeded",
    }
    out: dict[str, Any] = {
        "200": {"description": ok, "content": {"application/json": {"schema": {"type": "object"}}}}
    }
    for code in (401, 503, *codes):
        out[str(code)] = {
            "description": reasons[code],
            "content": {"application/json": {"schema": _ERROR}},
        }
    return out


def _write(
    summary: str, body: dict[str, Any] | None, *codes: int, params: list[dict[str, Any]]
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [*params, _IF_MATCH],
        "responses": _responses(
            "The new generation and the route", 400, 404, 409, 412, 422, *codes
        ),
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "splitgate admin API",
        "version": "1",
        "description": "Change the routing document (weights, tracks, upstreams) that every proxy replica follows.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "message": {"type": "string"},
                            "type": {"type": "string"},
                            "code": {"type": "string"},
                            "param": {"type": ["string", "null"]},
                        },
                    },
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "field": {"type": "string"},
                                "reason": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "Route": Route.model_json_schema(ref_template="#/components/schemas/{model}"),
            "Track": Track.model_json_schema(ref_template="#/components/schemas/{model}"),
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/routes": {
            "get": {
                "summary": "The routing document, its generation, and each live replica's applied generation",
                "responses": _responses("The document"),
            }
        },
        "/v1/routes/{route}": {
            "get": {
                "summary": "One route",
                "parameters": [_ROUTE_PARAM],
                "responses": _responses("The route", 404),
            }
        },
        "/v1/routes/{route}/weights": {
            "put": _write(
                "Set the weights of some or all tracks (percentages, two decimals at most, adding up to 100)",
                {
                    "type": "object",
                    "required": ["weights"],
                    "properties": {
                        "weights": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "number",
                                "minimum": 0,
                                "maximum": 100,
                            },
                        },
                        "reason": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                413,
                params=[_ROUTE_PARAM],
            )
        },
        "/v1/routes/{route}/tracks/{track}": {
            "put": _write(
                "Add a track or replace it",
                {"$ref": "#/components/schemas/Track"},
                413,
                params=[_ROUTE_PARAM, _TRACK_PARAM],
            ),
            "delete": _write(
                "Remove a track (its weight must be 0)", None, params=[_ROUTE_PARAM, _TRACK_PARAM]
            ),
        },
        "/v1/routes/{route}/tracks/{track}/upstreams": {
            "post": _write(
                "Add an upstream URL (http or https) to a track",
                {
                    "type": "object",
                    "required": ["url"],
                    "properties": {"url": {"type": "string"}, "reason": {"type": "string"}},
                },
                413,
                params=[_ROUTE_PARAM, _TRACK_PARAM],
            ),
            "delete": _write(
                "Remove an upstream URL from a track",
                None,
                params=[
                    _ROUTE_PARAM,
                    _TRACK_PARAM,
                    {"name": "url", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
            ),
        },
        "/v1/routes/{route}/metrics": {
            "get": {
                "summary": "Fleet-wide counts per track over a window: requests, error rate by class, latency and TTFB p50/p95/p99 (ms, from merged histograms), tokens per request",
                "parameters": [
                    _ROUTE_PARAM,
                    {
                        "name": "window",
                        "in": "query",
                        "schema": {"type": "string", "default": "5m"},
                        "description": "10s to 6h, e.g. 30s, 5m, 1h",
                    },
                ],
                "responses": _responses("The counts", 400, 404),
            }
        },
        "/v1/feedback": {
            "post": {
                "summary": "Hallucination, rating (1-5) and comment for an answered request, by its X-Request-Id (or X-Splitgate-Feedback-Id)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["request_id"],
                                "properties": {
                                    "request_id": {"type": "string"},
                                    "hallucination": {"type": "boolean"},
                                    "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                                    "comment": {"type": "string"},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    **_responses("Counted", 400, 422),
                    "202": {"description": "Counted for the track and version that answered"},
                },
            }
        },
        "/v1/audit": {
            "get": {
                "summary": "The newest audit records (actor, before, after, reason, time), newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    }
                ],
                "responses": _responses("The records", 400),
            }
        },
        "/v1/rollouts": {
            "post": {
                "summary": "Start a rollout from a plan (canary, blue-green, big bang or A/B test)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/yaml": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    **_responses("Started", 404, 409, 422),
                    "201": {"description": "The rollout's record"},
                },
            },
            "get": {"summary": "Every rollout", "responses": _responses("The records")},
        },
        "/v1/rollouts/{id}": {
            "get": {
                "summary": "Phase, weights, time in phase, what it waits for, last verdicts, history",
                "parameters": [_ID_PARAM],
                "responses": _responses("The record", 404),
            }
        },
        "/v1/rollouts/{id}/verdicts": {
            "get": {
                "summary": "Every look's verdicts with the figures they rest on, newest first",
                "parameters": [
                    _ID_PARAM,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": _responses("The looks", 400, 404),
            }
        },
        "/v1/rollouts/{id}/checks/{item}": {
            "post": {
                "summary": "Attest a checklist item (recorded with X-Splitgate-Actor and the time)",
                "parameters": [
                    _ID_PARAM,
                    {"name": "item", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "properties": {"note": {"type": "string"}}}
                        }
                    },
                },
                "responses": _responses("The record", 400, 404, 409, 422),
            }
        },
        "/v1/rollouts/{id}/{command}": {
            "post": {
                "summary": "approve, promote, pause, resume or abort; 409 names the state when it does not apply",
                "parameters": [
                    _ID_PARAM,
                    {
                        "name": "command",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": ["approve", "promote", "pause", "resume", "abort"],
                        },
                    },
                ],
                "responses": _responses("The record", 404, 409),
            }
        },
    },
}
