"""The admin API declared once: each operation's method, path, handler, request and response
schemas and the statuses it answers.

Everything else is generated from the table: the routes (``register``), the guard's checks
(which paths answer without the token, which query parameters each operation takes: any
other is refused with 400), and the OpenAPI 3.1 document (``control.openapi``). Each resource's
handler module declares its operations next to its handlers (``OPERATIONS``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = Mapping[str, Any] | type[BaseModel]
"""A JSON schema, or a pydantic model whose schema becomes a component."""

_PARAM = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    """aiohttp's form: ``{name}``, or ``{name:a|b}`` for a parameter with known values."""
    handler: Handler
    summary: str
    ok: str = "OK"
    """What the success answer holds."""
    returns: Schema | None = None
    """The success answer's JSON schema (``None``: a JSON object)."""
    status: int = 200
    errors: tuple[int, ...] = ()
    """Statuses besides the success, 401 (unless public) and 503."""
    params: tuple[Mapping[str, Any], ...] = ()
    """Query and header parameters, and path parameters that need more than a string."""
    body: Schema | None = None
    """The JSON request body's schema."""
    body_types: Mapping[str, Schema] = field(default_factory=dict)
    """Other request content types and their schemas (YAML plans and flags)."""
    body_required: bool = True
    public: bool = False
    """Answered without the bearer token (probes, scrapers)."""
    responses: Mapping[str, Any] | None = None
    """The whole ``responses`` object, for an answer that is not JSON (``/metrics``)."""

    @property
    def route_path(self) -> str:
        """The path as OpenAPI writes it: ``{command}``, not ``{command:approve|...}``."""
        return _PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)

    def query_names(self) -> frozenset[str]:
        return frozenset(p["name"] for p in self.params if p["in"] == "query")

    def path_params(self) -> list[dict[str, Any]]:
        """Each path parameter, typed from the path itself unless ``params`` declares it."""
        declared = {p["name"] for p in self.params if p["in"] == "path"}
        out: list[dict[str, Any]] = []
        for name, pattern in _PARAM.findall(self.path):
            if name in declared:
                continue
            schema: dict[str, Any] = {"type": "string"}
            if pattern:
                schema["enum"] = pattern.split("|")
            out.append({"name": name, "in": "path", "required": True, "schema": schema})
        return out


QUERIES: web.AppKey[dict[tuple[str, str], frozenset[str]]] = web.AppKey("queries")
PUBLIC: web.AppKey[frozenset[str]] = web.AppKey("public")


def register(app: web.Application, operations: Iterable[Operation]) -> None:
    """Route every operation, and give the guard what it checks (``control.api.guard``)."""
    queries: dict[tuple[str, str], frozenset[str]] = {}
    public: set[str] = set()
    for op in operations:
        if op.method == "GET":  # and HEAD, as aiohttp's add_get does
            route = app.router.add_get(op.path, op.handler)
        else:
            route = app.router.add_route(op.method, op.path, op.handler)
        resource = route.resource
        assert resource is not None
        queries[(op.method, resource.canonical)] = op.query_names()
        if op.public:
            public.add(op.path)
    app[QUERIES] = queries
    app[PUBLIC] = frozenset(public)


def check_table(operations: Iterable[Operation]) -> None:
    """Refuse a table that declares one method and path twice (a copy-paste slip)."""
    seen: set[tuple[str, str]] = set()
    for op in operations:
        key = (op.method, op.route_path)
        if key in seen:
            raise ValueError(f"{op.method} {op.route_path} is declared twice")
        seen.add(key)
