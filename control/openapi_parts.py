"""The pieces the admin API's OpenAPI document is built from: common parameters, the error
answers, write operations, components from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

ERROR = {"$ref": "#/components/schemas/Error"}
ROUTE_PARAM = {
    "name": "route",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "example": "chat",
}
TRACK_PARAM = {
    "name": "track",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "example": "canary",
}
ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "example": "chat-1a2b3c4d",
}
NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
REASON_PARAM = {
    "name": "reason",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "Recorded in the audit log (a JSON body's `reason` takes precedence).",
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The generation the caller read; 412 if the document has moved on.",
}


def responses(ok: str, *codes: int, schema: dict[str, Any] | None = None) -> dict[str, Any]:
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
        "200": {
            "description": ok,
            "content": {"application/json": {"schema": schema or {"type": "object"}}},
        }
    }
    for code in (401, 503, *codes):
        out[str(code)] = {
            "description": reasons[code],
            "content": {"application/json": {"schema": ERROR}},
        }
    return out


def write(
    summary: str, body: dict[str, Any] | None, *codes: int, params: list[dict[str, Any]]
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [*params, IF_MATCH],
        "responses": responses("The new generation and the route", 400, 404, 409, 412, 422, *codes),
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def component(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema and the schemas it refers to, all as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {model.__name__: schema, **schema.pop("$defs", {})}


def reasoned(schema: dict[str, Any]) -> dict[str, Any]:
    """A body schema with the optional ``reason`` recorded in the audit log."""
    return {"allOf": [schema, {"type": "object", "properties": {"reason": {"type": "string"}}}]}
