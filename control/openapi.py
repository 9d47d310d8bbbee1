"""The admin API's OpenAPI 3.1 document, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from config.flags import Flag, Segment
from config.records import QuarantinedRollout, RolloutRecord
from config.schema import Route, Track
from control.openapi_flags import FLAG_PATHS
from control.openapi_parts import (
    ID_PARAM,
    REASON_PARAM,
    ROUTE_PARAM,
    TRACK_PARAM,
    component,
    responses,
    write,
)

_RECORD = {"$ref": "#/components/schemas/RolloutRecord"}

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
            **component(RolloutRecord),
            **component(QuarantinedRollout),
            **component(Route),
            **component(Track),
            **component(Flag),
            **component(Segment),
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/readyz": {
            "get": {
                "summary": "Ready while Redis answers; each loop's passes and errors, leadership "
                "and the quarantined rollouts in `details` (no token needed)",
                "security": [],
                "responses": {
                    "200": {"description": "Ready"},
                    "503": {"description": "Redis unreachable"},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "The control plane's Prometheus metrics, among them "
                "splitgate_control_loop_errors_total{loop} (no token needed)",
                "security": [],
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
        "/v1/routes": {
            "get": {
                "summary": "The routing document, its generation, and each live replica's applied generation",
                "responses": responses("The document"),
            }
        },
        "/v1/routes/{route}": {
            "get": {
                "summary": "One route",
                "parameters": [ROUTE_PARAM],
                "responses": responses("The route", 404),
            }
        },
        "/v1/routes/{route}/weights": {
            "put": write(
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
                params=[ROUTE_PARAM],
            )
        },
        "/v1/routes/{route}/tracks/{track}": {
            "put": write(
                "Add a track or replace it",
                {"$ref": "#/components/schemas/Track"},
                413,
                params=[ROUTE_PARAM, TRACK_PARAM],
            ),
            "delete": write(
                "Remove a track (its weight must be 0)",
                None,
                params=[ROUTE_PARAM, TRACK_PARAM, REASON_PARAM],
            ),
        },
        "/v1/routes/{route}/tracks/{track}/upstreams": {
            "post": write(
                "Add an upstream URL (http or https) to a track",
                {
                    "type": "object",
                    "required": ["url"],
                    "properties": {"url": {"type": "string"}, "reason": {"type": "string"}},
                },
                413,
                params=[ROUTE_PARAM, TRACK_PARAM],
            ),
            "delete": write(
                "Remove an upstream URL from a track",
                None,
                params=[
                    ROUTE_PARAM,
                    TRACK_PARAM,
                    {"name": "url", "in": "query", "required": True, "schema": {"type": "string"}},
                    REASON_PARAM,
                ],
            ),
        },
        "/v1/routes/{route}/metrics": {
            "get": {
                "summary": "Fleet-wide counts per track over a window: requests, error rate by class, latency and TTFB p50/p95/p99 (ms, from merged histograms), tokens per request",
                "parameters": [
                    ROUTE_PARAM,
                    {
                        "name": "window",
                        "in": "query",
                        "schema": {"type": "string", "default": "5m"},
                        "description": "10s to 6h, e.g. 30s, 5m, 1h",
                    },
                ],
                "responses": responses("The counts", 400, 404),
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
                    **responses("Counted", 400, 422),
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
                "responses": responses("The records", 400),
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
                    **responses("Started", 404, 409, 422),
                    "201": {
                        "description": "The rollout's record",
                        "content": {"application/json": {"schema": _RECORD}},
                    },
                },
            },
            "get": {
                "summary": "Active rollouts, then finished ones newest first (paged), and the "
                "quarantined records with their reason",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": responses(
                    "`rollouts`, `next_cursor` (null on the last page), `quarantined`",
                    400,
                    schema={
                        "type": "object",
                        "required": ["rollouts", "next_cursor", "quarantined"],
                        "properties": {
                            "rollouts": {"type": "array", "items": _RECORD},
                            "next_cursor": {"type": ["string", "null"]},
                            "quarantined": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/QuarantinedRollout"},
                            },
                        },
                    },
                ),
            },
        },
        "/v1/rollouts/{id}": {
            "get": {
                "summary": "Phase, weights, time in phase, what it waits for, last verdicts, history",
                "parameters": [ID_PARAM],
                "responses": responses(
                    "The record, with the route's `weights` now and the `time_in_phase_s`",
                    404,
                    schema={
                        "allOf": [
                            _RECORD,
                            {
                                "type": "object",
                                "properties": {
                                    "time_in_phase_s": {"type": ["number", "null"]},
                                    "weights": {
                                        "type": ["object", "null"],
                                        "additionalProperties": {"type": "number"},
                                    },
                                },
                            },
                        ]
                    },
                ),
            }
        },
        "/v1/rollouts/{id}/verdicts": {
            "get": {
                "summary": "Every look's verdicts with the figures they rest on, newest first",
                "parameters": [
                    ID_PARAM,
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": responses("The looks", 400, 404),
            }
        },
        "/v1/rollouts/{id}/checks/{item}": {
            "post": {
                "summary": "Attest a checklist item (recorded with X-Splitgate-Actor and the time)",
                "parameters": [
                    ID_PARAM,
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
                "responses": responses("The record", 400, 404, 409, 422),
            }
        },
        "/v1/rollouts/{id}/{command}": {
            "post": {
                "summary": "approve, promote, pause, resume or abort; 409 names the state when it does not apply",
                "parameters": [
                    ID_PARAM,
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
                "responses": responses("The record", 404, 409),
            }
        },
        **FLAG_PATHS,
    },
}

QUERY_NAMES: dict[tuple[str, str], frozenset[str]] = {
    (method.upper(), path): frozenset(
        p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
    )
    for path, operations in OPENAPI["paths"].items()
    for method, operation in operations.items()
}
"""Each documented operation's query parameters: the admin API's guard refuses any other."""
