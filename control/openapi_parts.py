"""The pieces the admin API's table is declared with (``control.api_table``): common
parameters, the error answers, write operations, components from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from control.api_table import Handler, Operation, Schema

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
LIMIT_QUERY = {
    "name": "limit",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The generation the caller read; 412 if the document has moved on.",
}


REASONS = {
    400: "Malformed request",
    401: "Missing or wrong bearer token",
    404: "No such route, track or upstream",
    409: "Refused: the change conflicts with the document",
    412: "If-Match names an old generation",
    413: "Body too large",
    422: "Invalid field: `errors` names each field and why",
    503: "Redis unreachable or not seeded",
}


def responses(
    ok: str,
    *codes: int,
    schema: dict[str, Any] | None = None,
    status: int = 200,
    public: bool = False,
) -> dict[str, Any]:
    """The success answer and the errors: each error's body is the ``Error`` schema."""
    out: dict[str, Any] = {
        str(status): {
            "description": ok,
            "content": {"application/json": {"schema": schema or {"type": "object"}}},
        }
    }
    # Any request may be malformed at the HTTP level (a header the parser refuses): 400.
    for code in sorted({400, *(() if public else (401,)), 503, *codes}):
        content: dict[str, Any] = {"application/json": {"schema": ERROR}}
        if code == 400:  # the HTTP parser's own answer, before any handler, is plain text
            content["text/plain"] = {"schema": {"type": "string"}}
        out[str(code)] = {"description": REASONS[code], "content": content}
    return out


WRITE_ERRORS = (400, 404, 409, 412, 422)


def write_op(
    method: str,
    path: str,
    handler: Handler,
    summary: str,
    body: Schema | None,
    *codes: int,
    params: tuple[dict[str, Any], ...] = (),
) -> Operation:
    """A write of the routing document: If-Match, the new generation and part in the answer."""
    return Operation(
        method,
        path,
        handler,
        summary,
        ok="The new generation and the route",
        errors=(*WRITE_ERRORS, *codes),
        params=(*params, IF_MATCH),
        body=body,
    )


def component(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema and the schemas it refers to, all as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {model.__name__: schema, **schema.pop("$defs", {})}


def reasoned(model: type[BaseModel]) -> dict[str, Any]:
    """A model's body schema with the optional ``reason`` recorded in the audit log (the model
    must be among the document's components: ``control.openapi.MODELS``)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"allOf": [ref, {"type": "object", "properties": {"reason": {"type": "string"}}}]}
