"""The admin API's OpenAPI 3.1 document, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from config.flags import Flag, Segment
from config.schema import Route, Track

_ERROR = {"$ref": "#/components/schemas/Error"}
_ROUTE_PARAM = {"name": "route", "in": "path", "required": True, "schema": {"type": "string"}}
_TRACK_PARAM = {"name": "track", "in": "path", "required": True, "schema": {"type": "string"}}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_REASON_PARAM = {
    "name": "reason",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "Recorded in the audit log (a JSON body's `reason` takes precedence).",
}
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


def _component(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema and the schemas it refers to, all as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {model.__name__: schema, **schema.pop("$defs", {})}


def _reasoned(schema: dict[str, Any]) -> dict[str, Any]:
    """A body schema with the optional ``reason`` recorded in the audit log."""
    return {"allOf": [schema, {"type": "object", "properties": {"reason": {"type": "string"}}}]}


_FLAG_PATHS: dict[str, Any] = {
    "/v1/flags": {
        "get": {
            "summary": "Every feature flag in evaluation order, the segments and the attributes",
            "responses": _responses("The flags"),
        }
    },
    "/v1/flags/explain": {
        "post": {
            "summary": "Which track a request would get and why: the rule that matched and what each flag of the route did",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["route"],
                            "properties": {
                                "route": {"type": "string"},
                                "headers": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "description": "Request headers, read as the proxy reads them (sticky key, attributes)",
                                },
                                "user_id": {"type": ["string", "null"]},
                                "attributes": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                    "description": "Attribute values; they win over those the headers give",
                                },
                                "client_ip": {"type": "string"},
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": _responses("The explanation (config.flags.Explanation)", 400, 404, 422),
        }
    },
    "/v1/flags/{name}": {
        "get": {
            "summary": "One flag",
            "parameters": [_NAME_PARAM],
            "responses": _responses("The flag", 404),
        },
        "put": {
            **_write(
                "Add a flag (evaluated after the others) or replace it in place; YAML bodies name the line of each error",
                None,
                413,
                params=[_NAME_PARAM, _REASON_PARAM],
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _reasoned({"$ref": "#/components/schemas/Flag"})
                    },
                    "application/yaml": {"schema": {"type": "string"}},
                },
            },
        },
        "patch": _write(
            "Change some top-level fields of a flag (enabled, rollout_percentage ...)",
            {"type": "object"},
            413,
            params=[_NAME_PARAM],
        ),
        "delete": _write(
            "Remove a flag: its users go back to the weighted split",
            None,
            params=[_NAME_PARAM, _REASON_PARAM],
        ),
    },
    "/v1/flags/{name}/schedule": {
        "get": {
            "summary": "Each dated step of the flag's schedule: applied, due or scheduled; the last result and the analysis",
            "parameters": [_NAME_PARAM],
            "responses": _responses("The schedule's progress", 404),
        }
    },
    "/v1/flags/{name}/schedule/{command}": {
        "post": _write(
            "Pause or resume the flag's schedule (gradual_rollout.paused); a resume restarts the analysis period",
            None,
            params=[
                _NAME_PARAM,
                {
                    "name": "command",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ["pause", "resume"]},
                },
                _REASON_PARAM,
            ],
        )
    },
    "/v1/segments/{name}": {
        "get": {
            "summary": "One segment",
            "parameters": [_NAME_PARAM],
            "responses": _responses("The segment", 404),
        },
        "put": _write(
            "Add or replace a segment (a named condition set)",
            _reasoned({"$ref": "#/components/schemas/Segment"}),
            413,
            params=[_NAME_PARAM],
        ),
        "delete": _write(
            "Remove a segment (409 while a flag or schedule names it)",
            None,
            params=[_NAME_PARAM, _REASON_PARAM],
        ),
    },
    "/v1/attributes": {
        "put": _write(
            "Replace the map of attribute name to the request header it is read from",
            {
                "type": "object",
                "required": ["attributes"],
                "properties": {
                    "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
                    "reason": {"type": "string"},
                },
                "additionalProperties": False,
            },
            413,
            params=[],
        )
    },
}


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
            **_component(Flag),
            **_component(Segment),
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
        **_FLAG_PATHS,
    },
}
