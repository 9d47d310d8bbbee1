"""The admin API of feature flags (``docs/FLAGS.md``).

The weights API's rules hold: bearer auth and JSON errors (``control.api.guard``), 422 with
``errors: [{field, reason}]``, 404 for an unknown flag or segment, ``If-Match`` answered with
412, read–edit–compare-and-set, and each change audited with the actor
(``X-Splitgate-Actor``), the reason (``reason`` in a JSON body, else ``?reason=``) and the
flag, segment or attributes before and after. The edits are ``control.edits``'.

- ``GET /v1/flags``: every flag in evaluation order, the segments and the attributes.
- ``GET|PUT|PATCH|DELETE /v1/flags/{name}``: PUT takes JSON or YAML (``application/yaml``,
  whose field errors give the line); PATCH changes top-level fields.
- ``GET|PUT|DELETE /v1/segments/{name}``, ``PUT /v1/attributes``: ``control.segments_api``.
- ``POST /v1/flags/explain``: the track a request would get and why (``config.targeting.explain``),
  from its headers and, for a ``conversation`` stickiness source, its body.
- ``GET /v1/flags/{name}/schedule`` (``control.schedule_view``) and ``POST
  .../schedule/{pause|resume}`` (``control.schedule``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

import yaml
from aiohttp import web

from config.flag_schedule import zone_of
from config.flags import Flag
from config.loader import ConfigError, Problem, parse_model
from config.schema import RoutingDocument
from config.targeting import explain, request_facts
from control import edits
from control.api import (
    Part,
    current,
    json_response,
    read_json,
    write_part,
)
from control.edits import EditError, FieldError
from control.parts import change_of, without_reason
from control.schedule import Schedules
from control.schedule_steps import set_paused
from control.schedule_store import UnreadableSchedule
from control.schedule_view import progress

SCHEDULES = web.AppKey("schedules", Schedules)
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
EXPLAIN_FIELDS = frozenset({"route", "headers", "user_id", "attributes", "client_ip", "body"})
EXPLAIN_BODY_BYTES = 256 * 1024
"""The largest request body ``explain`` reads. Only a conversation's opening (instructions and
first user message) names it, so a longer chat explains the same cut down to its opening."""

_ZONES: dict[str, tzinfo] = {}
"""Time zones loaded off the event loop, held so that validation finds them cached."""


def _flag(name: str) -> Part:
    def part(document: RoutingDocument) -> Any:
        flag = document.feature_flags.get(name)
        return None if flag is None else flag.model_dump()

    return part


async def _load_zone(body: Any) -> None:
    """Load a schedule's time zone in a thread (reading the tz database would block the
    loop), so that validation finds it cached; an unknown one is refused here."""
    schedule = body.get("gradual_rollout") if isinstance(body, Mapping) else None
    name = schedule.get("timezone") if isinstance(schedule, Mapping) else None
    if isinstance(name, str) and name not in _ZONES:
        try:
            _ZONES[name] = await asyncio.to_thread(zone_of, name)
        except ValueError as exc:
            raise EditError([FieldError("flag.gradual_rollout.timezone", str(exc))]) from None


async def list_flags(request: web.Request) -> web.Response:
    document = await current(request)
    return json_response(
        {
            "generation": document.generation,
            "flags": {name: f.model_dump() for name, f in document.feature_flags.items()},
            "segments": {name: s.model_dump() for name, s in document.segments.items()},
            "attributes": dict(document.attributes),
        },
        headers={"ETag": f'"{document.generation}"'},
    )


async def get_flag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    document = await current(request)
    flag = edits.find_flag(document, name)
    return json_response(
        {"generation": document.generation, "flag": flag.model_dump()},
        headers={"ETag": f'"{document.generation}"'},
    )


async def put_flag(request: web.Request) -> web.Response:
    """Add or replace a flag. A new flag (none of that name before) starts its schedule's
    progress afresh."""
    name = request.match_info["name"]
    if request.content_type in YAML_TYPES:
        text = (await request.read()).decode("utf-8", "replace")
        try:
            await _load_zone(_peek(text))
        except EditError as exc:
            raise _with_lines(exc, text) from None
        body, reason_from = _yaml_flag(text), None
    else:
        text, reason_from = None, await read_json(request)
        body = without_reason(reason_from)
        await _load_zone(body)
    created = False

    def edit(document: RoutingDocument) -> RoutingDocument:
        nonlocal created
        created = name not in document.feature_flags
        try:
            return edits.put_flag(document, name, body)
        except EditError as exc:
            raise _with_lines(exc, text) from None

    change = change_of(request, reason_from, "put_flag", f"flags/{name}")
    response, wrote = await write_part(request, edit, change, "flag", _flag(name))
    schedules = request.app.get(SCHEDULES)
    if wrote and created and schedules is not None:
        await schedules.forget(name)
    return response


async def patch_flag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = await read_json(request)
    changes = without_reason(body)
    await _load_zone(changes)
    return (
        await write_part(
            request,
            lambda document: edits.patch_flag(document, name, changes),
            change_of(request, body, "patch_flag", f"flags/{name}"),
            "flag",
            _flag(name),
        )
    )[0]


async def delete_flag(request: web.Request) -> web.Response:
    """Remove a flag (its users go back to the weighted split) and its schedule's progress."""
    name = request.match_info["name"]
    response, wrote = await write_part(
        request,
        lambda document: edits.delete_flag(document, name),
        change_of(request, None, "delete_flag", f"flags/{name}"),
        "flag",
        _flag(name),
    )
    schedules = request.app.get(SCHEDULES)
    if wrote and schedules is not None:
        await schedules.forget(name)
    return response


async def explain_request(request: web.Request) -> web.Response:
    """``{"route", "headers", "body"}`` (as the proxy would read them) or ``{"route",
    "user_id", "attributes"}`` (given ones win over those the headers give) →
    ``config.flags.Explanation``. ``body``, a JSON object or its text, is the request body a
    ``conversation`` stickiness source reads when the conversation id header is absent."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise EditError([FieldError("body", 'an object: {"route": "chat", "headers": {...}}')])
    errors = [FieldError(name, "unknown field") for name in sorted(set(body) - EXPLAIN_FIELDS)]
    if not isinstance(body.get("route"), str):
        errors.append(FieldError("route", "required: the name of a route"))
    for name in ("headers", "attributes"):
        value = body.get(name, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            errors.append(FieldError(name, "an object of name → text"))
    for name in ("user_id", "client_ip"):
        if body.get(name) is not None and not isinstance(body[name], str):
            errors.append(FieldError(name, "text"))
    request_body = _request_body(body.get("body"), errors)
    if errors:
        raise EditError(errors)
    document = await current(request)
    route = edits.find_route(document, body["route"]).name
    headers = {k.lower(): v for k, v in body.get("headers", {}).items()}
    user_id, attributes = request_facts(
        document, route, headers, body.get("client_ip"), request_body
    )
    if "user_id" in body:
        user_id = body["user_id"] or None
    answer = explain(document, route, user_id, {**attributes, **body.get("attributes", {})})
    return json_response({"generation": document.generation, **answer.model_dump()})


def _request_body(value: Any, errors: list[FieldError]) -> bytes | None:
    """Explain's ``body`` as the bytes the proxy would buffer: text as UTF-8, an object as
    its JSON (the conversation key reads the parsed body, not its spelling); None when
    absent. A wrong type or size is added to ``errors``."""
    if value is None:
        return None
    if isinstance(value, dict):
        try:
            data = json.dumps(value).encode("ascii")
        except RecursionError:
            errors.append(FieldError("body", "nested too deeply"))
            return None
    elif isinstance(value, str):
        # Lone surrogates pass through as the bytes a client could send; they read as no key.
        data = value.encode("utf-8", "surrogatepass")
    else:
        errors.append(FieldError("body", "the request body: a JSON object or its text"))
        return None
    if len(data) > EXPLAIN_BODY_BYTES:
        errors.append(
            FieldError("body", f"at most {EXPLAIN_BODY_BYTES} bytes: cut it to the opening")
        )
        return None
    return data


async def get_schedule(request: web.Request) -> web.Response:
    """Each dated step's state (applied, due, scheduled), the last result and the analysis."""
    name = request.match_info["name"]
    document = await current(request)
    schedules = request.app.get(SCHEDULES)
    record, unreadable = None, None
    try:
        record = await schedules.record(name) if schedules is not None else None
    except UnreadableSchedule as exc:
        unreadable = exc.reason
    flag = document.feature_flags.get(name)
    if flag is None and record is None and unreadable is None:
        edits.find_flag(document, name)
    if flag is not None and flag.gradual_rollout is None:
        raise EditError(
            [FieldError("flag.gradual_rollout", f"flag {name!r} has no schedule")], status=404
        )
    schedule = flag.gradual_rollout if flag is not None else None
    return json_response(progress(name, schedule, record, time.time(), unreadable))


async def schedule_command(request: web.Request) -> web.Response:
    """Pause or resume a schedule: the document's ``gradual_rollout.paused``, audited. A
    resume also restarts the analysis period of the next step that requires one."""
    name, command = request.match_info["name"], request.match_info["command"]
    if command not in ("pause", "resume"):
        raise EditError([FieldError("command", "pause or resume")], status=404)
    body = await read_json(request) if (await request.read()).strip() else None
    change = change_of(request, body, f"{command}_schedule", f"flags/{name}")
    response, wrote = await write_part(
        request,
        lambda document: set_paused(document, name, command == "pause"),
        change,
        "flag",
        _flag(name),
    )
    schedules = request.app.get(SCHEDULES)
    if wrote and schedules is not None:
        why = f": {change.reason}" if change.reason else ""
        await schedules.note(
            name, f"{command}d", f"{command}d by {change.actor}{why}", restart=command == "resume"
        )
    return response


def _peek(text: str) -> Any:
    """The YAML's data if it parses (``_yaml_flag`` reports what does not)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _yaml_flag(text: str) -> dict[str, Any]:
    """A flag from YAML; its errors name the line (``line 7: unknown operator …``)."""
    try:
        return parse_model(text, Flag, source="flag").model_dump()
    except ConfigError as exc:
        raise EditError([_problem(p) for p in exc.details]) from None


def _problem(problem: Problem) -> FieldError:
    """``flag:7: conditions[0].operator: reason`` as ``flag.conditions[0].operator`` and
    ``line 7: reason``; a problem with the text itself (not YAML, empty) is the flag's."""
    field = "flag" if not problem.field else f"flag.{problem.field}"
    why = f"line {problem.line}: {problem.reason}" if problem.line else problem.reason
    return FieldError(field, why)


def _with_lines(exc: EditError, text: str | None) -> EditError:
    """The refusal, with the YAML line of each field when the flag came as YAML text."""
    if text is None:
        return exc
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    errors = []
    for e in exc.errors:
        line = _line(root, e.field)
        errors.append(FieldError(e.field, f"line {line}: {e.reason}" if line else e.reason))
    return EditError(errors, exc.status)


def _line(node: yaml.Node | None, field: str) -> int | None:
    """The 1-based line of the deepest part of ``flag.<path>`` that the YAML holds."""
    if node is None or not field.startswith("flag."):
        return None
    line = None
    for part in re.findall(r"[^.\[\]]+", field.removeprefix("flag.")):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    line, child = key.start_mark.line + 1, value
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line
