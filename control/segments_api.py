"""The admin API of segments and request attributes (``docs/FLAGS.md``): the same rules as
the flags' (``control.flags_api``), written through ``control.parts``.

- ``GET|PUT|DELETE /v1/segments/{name}``: a named audience of condition sets.
- ``PUT /v1/attributes``: the attribute → header map.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config.schema import RoutingDocument
from control import edits
from control.api import Part, current, json_response, read_json, write_part
from control.edits import EditError, FieldError
from control.parts import change_of, without_reason


def add_segment_routes(app: web.Application) -> None:
    app.router.add_get("/v1/segments/{name}", get_segment)
    app.router.add_put("/v1/segments/{name}", put_segment)
    app.router.add_delete("/v1/segments/{name}", delete_segment)
    app.router.add_put("/v1/attributes", put_attributes)


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
