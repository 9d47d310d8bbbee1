"""The admin API is one declared table: what is routed is what is documented, and back."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from config.records import RolloutRecord
from control.api_table import Operation, check_table, register
from control.openapi import OPENAPI, OPERATIONS, document


async def nothing(request: web.Request) -> web.Response:
    return web.Response()


def routed(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        info: Any = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        if route.method != "HEAD":
            out.add((route.method, path))
    return out


def test_every_routed_operation_is_documented_and_every_documented_one_is_routed() -> None:
    app = web.Application()
    register(app, OPERATIONS)
    documented = {
        (method.upper(), path)
        for path, operations in OPENAPI["paths"].items()
        for method in operations
    }
    assert routed(app) == documented


def test_a_path_parameter_with_known_values_is_an_enum_in_the_document() -> None:
    command = OPENAPI["paths"]["/v1/rollouts/{id}/{command}"]["post"]["parameters"]
    schema = next(p["schema"] for p in command if p["name"] == "command")
    assert schema == {
        "type": "string",
        "enum": ["approve", "promote", "pause", "resume", "abort"],
    }


def test_answers_are_described_by_their_models_not_by_any_object() -> None:
    answer = OPENAPI["paths"]["/v1/rollouts"]["post"]["responses"]["201"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RolloutRecord"
    }
    assert "RolloutRecord" in OPENAPI["components"]["schemas"]
    page = OPENAPI["components"]["schemas"]["RolloutPage"]
    assert set(page["required"]) == {"rollouts", "next_cursor", "quarantined"}


def test_public_operations_need_no_token_and_say_so() -> None:
    public = {op.path for op in OPERATIONS if op.public}
    # The probes, and the dashboard's files (its data calls carry the token).
    dashboard = {p for p in public if p.startswith("/ui")}
    assert public - dashboard == {"/healthz", "/readyz", "/metrics"}
    assert dashboard >= {"/ui", "/ui/", "/ui/main.js"}
    for path in public:
        assert OPENAPI["paths"][path]["get"]["security"] == []


def test_a_table_that_declares_an_operation_twice_is_refused() -> None:
    twice = (
        Operation("GET", "/v1/x/{id}", nothing, "one"),
        Operation("GET", "/v1/x/{id:a|b}", nothing, "the same path"),
    )
    with pytest.raises(ValueError, match=r"GET /v1/x/\{id\} is declared twice"):
        check_table(twice)


def test_a_model_schema_becomes_a_component_once() -> None:
    ops = (
        Operation("GET", "/a", nothing, "a", returns=RolloutRecord),
        Operation("GET", "/b", nothing, "b", returns=RolloutRecord),
    )
    doc = document(ops)
    ref = {"$ref": "#/components/schemas/RolloutRecord"}
    for path in ("/a", "/b"):
        assert doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"] == {
            "schema": ref
        }
