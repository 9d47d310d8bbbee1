"""The admin API's OpenAPI 3.1 document, generated from the declared table
(``control.api_table``) and served at ``/openapi.json``.

``OPERATIONS`` is the whole table: each resource module's operations, in the order the
document lists them. ``control.admin`` routes exactly these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from config.flags import Flag, Segment
from config.schema import Route, Track
from control import (
    audit_api,
    feedback_api,
    flags_table,
    health_api,
    requests_api,
    rollouts_api,
    routes_api,
    segments_api,
    series_api,
    shadow_api,
    ui_api,
)
from control.api import json_response
from control.api_table import Operation, Schema, check_table
from control.openapi_parts import component, responses

MODELS: tuple[type[BaseModel], ...] = (Route, Track, Flag, Segment)
"""Components that schemas written by hand refer to (``reasoned``)."""

ERROR_SCHEMA = {
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
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}


async def serve_openapi(request: web.Request) -> web.Response:
    return json_response(OPENAPI)


OPERATIONS: tuple[Operation, ...] = (
    *health_api.OPERATIONS,
    Operation("GET", "/openapi.json", serve_openapi, "This document", ok="The OpenAPI document"),
    *routes_api.OPERATIONS,
    *feedback_api.OPERATIONS,
    *requests_api.OPERATIONS,
    *audit_api.OPERATIONS,
    *rollouts_api.OPERATIONS,
    *flags_table.OPERATIONS,
    *segments_api.OPERATIONS,
    *series_api.OPERATIONS,
    *shadow_api.OPERATIONS,
    *ui_api.OPERATIONS,
)
check_table(OPERATIONS)


def document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for model in MODELS:
        schemas.update(component(model))

    def schema_of(schema: Schema | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        if isinstance(schema, type):
            schemas.update(component(schema))
            return {"$ref": f"#/components/schemas/{schema.__name__}"}
        return dict(schema)

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {"summary": op.summary}
        params = [*op.path_params(), *op.params]
        if params:
            entry["parameters"] = params
        if op.public:
            entry["security"] = []
        content = {}
        if op.body is not None:
            content["application/json"] = {"schema": schema_of(op.body)}
        for media, schema in op.body_types.items():
            content[media] = {"schema": schema_of(schema)}
        if content:
            entry["requestBody"] = {"required": op.body_required, "content": content}
        entry["responses"] = (
            dict(op.responses)
            if op.responses is not None
            else responses(
                op.ok,
                *op.errors,
                schema=schema_of(op.returns),
                status=op.status,
                public=op.public,
            )
        )
        paths.setdefault(op.route_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "splitgate admin API",
            "version": "1",
            "description": "Change the routing document (weights, tracks, upstreams) that every "
            "proxy replica follows, run rollouts and feature flags.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


OPENAPI: dict[str, Any] = document(OPERATIONS)
