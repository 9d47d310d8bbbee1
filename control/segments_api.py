"""The admin API of segments and request attributes (``docs/FLAGS.md``): the same rules as
the flags' (``control.flags_api``), written through ``control.parts``.

- ``GET|PUT|DELETE /v1/segments/{name}``: a named audience of condition sets.
- ``PUT /v1/attributes``: the attribute → header map.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config.flags import Segment
from config.schema import RoutingDocument
from control import edits
from control.api import Part, current, json_response, read_json, write_part
from control.api_table import Operation
from control.edits import EditError, FieldError
from control.openapi_parts import NAME_PARAM, REASON_PARAM, reasoned, write_op
from control.parts import change_of, without_reason


def segment_part(name: str) -> Part:
    def part(document: RoutingDocument) -> Any:
        segment = document.segments.get(name)
        return None if segment is None else segment.model_dump()

    return part


async def get_segment(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    document = await current(request)
    segment = document.segments.get(name)
    if segment is None:
        raise EditError([FieldError("segment", f"no segment named {name!r}")], status=404)
    return json_response(
        {"generation": document.generation, "segment": segment.model_dump()},
        headers={"ETag": f'"{document.generation}"'},
    )


async def put_segment(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json(request)
    segment = without_reason(body)
    return (
        await write_part(
            request,
            lambda document: edits.put_segment(document, name, segment),
            change_of(request, body, "put_segment", f"segments/{name}"),
            "segment",
            segment_part(name),
        )
    )[0]


async def delete_segment(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return (
        await write_part(
            request,
            lambda document: edits.delete_segment(document, name),
            change_of(request, None, "delete_segment", f"segments/{name}"),
            "segment",
            segment_part(name),
        )
    )[0]


async def put_attributes(request: web.Request) -> web.Response:
    """Replace the attribute → header map: ``{"attributes": {"region": "x-geo"}}``."""
    body = await read_json(request)
    if not isinstance(body, dict) or "attributes" not in body:
        raise EditError([FieldError("attributes", 'required: {"attributes": {"region": "x-geo"}}')])
    unknown = set(body) - {"attributes", "reason"}
    if unknown:
        raise EditError([FieldError(name, "unknown field") for name in sorted(unknown)])
    return (
        await write_part(
            request,
            lambda document: edits.set_attributes(document, body["attributes"]),
            change_of(request, body, "set_attributes", "attributes"),
            "attributes",
            lambda document: dict(document.attributes),
        )
    )[0]


OPERATIONS = (
    Operation(
        "GET",
        "/v1/segments/{name}",
        get_segment,
        "One segment",
        ok="The segment",
        errors=(404,),
        params=(NAME_PARAM,),
    ),
    write_op(
        "PUT",
        "/v1/segments/{name}",
        put_segment,
        "Add or replace a segment (a named condition set)",
        reasoned(Segment),
        413,
        params=(NAME_PARAM, REASON_PARAM),
    ),
    write_op(
        "DELETE",
        "/v1/segments/{name}",
        delete_segment,
        "Remove a segment (409 while a flag or schedule names it)",
        None,
        params=(NAME_PARAM, REASON_PARAM),
    ),
    write_op(
        "PUT",
        "/v1/attributes",
        put_attributes,
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
        params=(REASON_PARAM,),
    ),
)
