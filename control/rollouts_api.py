"""The admin API's rollouts: start one from a plan, read them, act on them, attest checklist
items, read each look's verdicts. Same rules as the rest of the API (``control.api``): bearer
auth, JSON errors naming the field, 409 naming the state when a command does not apply."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from config.environments import with_environment
from config.loader import ConfigError, Problem
from config.plans import (
    ABTestPlan,
    BigBangPlan,
    BlueGreenPlan,
    CanaryPlan,
    as_canary,
    blue_green_as_canary,
    parse_plan,
)
from config.records import RolloutLooks, RolloutPage, RolloutRecord, RolloutView
from config.records import Strategy as StoredKind
from control import edits
from control.api import (
    ENVIRONMENTS,
    ROLLOUTS,
    STORE,
    actor_and_reason,
    current,
    error,
    json_response,
    read_json,
)
from control.api_table import Operation
from control.edits import EditError, FieldError
from control.openapi_parts import ID_PARAM, LIMIT_QUERY
from control.rollout_store import Unreadable
from control.rollouts import RolloutConflict, UnknownItem
from control.strategies.canary import CommandRefused


async def start_rollout(request: web.Request) -> web.Response:
    """Start a rollout from a plan: YAML text (``application/yaml``) or the same as JSON."""
    rollouts = request.app[ROLLOUTS]
    text = (await request.read()).decode("utf-8", "replace")
    try:
        parsed = parse_plan(text)
    except ConfigError as exc:
        errors = [_field_error(p) for p in exc.details]
        raise EditError(errors) from None
    document = await current(request)
    route = edits.find_route(document, parsed.route)
    tracks = {t.name for t in route.tracks}
    environments = request.app[ENVIRONMENTS].environments
    environment = environments.get(parsed.environment) if parsed.environment else None
    rollback = environment.rollback if environment is not None else "automatic"
    actor, _ = actor_and_reason(request, None)
    plan: CanaryPlan | ABTestPlan
    strategy: StoredKind = "canary"
    smoke: list[dict[str, Any]] = []
    if isinstance(parsed, ABTestPlan):
        missing = [name for name in parsed.split if name not in tracks]
        if missing:
            raise EditError(
                [
                    FieldError(
                        f"ab_testing.split.{name}", f"route {parsed.route!r} has no track {name!r}"
                    )
                    for name in missing
                ]
            )
        strategy, plan = "ab_test", parsed
    else:
        if isinstance(parsed, BigBangPlan):
            strategy, canary_plan = "big_bang", as_canary(parsed)
        elif isinstance(parsed, BlueGreenPlan):
            smoke = [t.model_dump(mode="json") for t in parsed.phase_1_prepare.smoke_tests]
            strategy, canary_plan = "blue_green", blue_green_as_canary(parsed)
        else:
            canary_plan = parsed
        plan = with_environment(canary_plan, environment)
        if plan.baseline not in tracks:
            where = (
                "blue_green_deployment.active"
                if strategy == "blue_green"
                else "canary_deployment.baseline"
            )
            raise EditError(
                [FieldError(where, f"route {plan.route!r} has no track {plan.baseline!r}")]
            )
        # A rollout moves traffic between the baseline and the candidate alone.
        loaded = [
            t
            for t in route.tracks
            if t.name not in (plan.baseline, plan.candidate.track) and t.weight > 0
        ]
        serving = next((t for t in route.tracks if t.name == plan.candidate.track), None)
        baseline = edits.find_track(route, plan.baseline)
        if (
            serving is not None
            and serving.weight > baseline.weight
            and (serving.version, serving.upstreams)
            != (plan.candidate.version, plan.candidate.upstreams)
        ):
            # Registering the new version there would hand its users to the older baseline.
            field = (
                "blue_green_deployment.idle"
                if strategy == "blue_green"
                else "canary_deployment.candidate.track"
            )
            raise EditError(
                [
                    FieldError(
                        field,
                        f"track {serving.name!r} serves {serving.weight:g}% of route {plan.route!r} "
                        f"({serving.version}), more than the baseline {plan.baseline!r}: it is what "
                        f"runs now; name it as the baseline, or move its weight to {plan.baseline!r} first",
                    )
                ]
            )
        if loaded:
            raise EditError(
                [
                    FieldError(
                        "route",
                        f"track {t.name!r} of route {plan.route!r} has {t.weight:g}%: a rollout "
                        f"moves traffic between {plan.baseline!r} and {plan.candidate.track!r} "
                        "only; set it to 0 first",
                    )
                    for t in loaded
                ]
            )
    try:
        record = await rollouts.create(plan, actor, strategy, smoke, rollback=rollback)
    except RolloutConflict as exc:
        return error(409, "rollout_active", str(exc))
    return json_response(record.stored(), status=201)


def _field_error(problem: Problem) -> FieldError:
    """``plan:12: canary_deployment.phases[0].traffic: reason`` as the API names it."""
    why = f"line {problem.line}: {problem.reason}" if problem.line else problem.reason
    return FieldError(problem.field or "plan", why)


async def list_rollouts(request: web.Request) -> web.Response:
    """Active rollouts, then finished ones newest first, ``limit`` of those per page
    (``?limit=``, 1 to 1000, default 100); ``next_cursor`` (``?cursor=``) reads the next page.
    ``quarantined`` lists the records that do not read, with the reason."""
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise EditError([FieldError("limit", "a number from 1 to 1000")], status=400)
    cursor = _cursor(request.query.get("cursor"))
    records = request.app[ROLLOUTS].records
    page, after = await records.page(int(raw), cursor)
    return json_response(
        {
            "rollouts": [record.stored() for record in page],
            "next_cursor": None if after is None else f"{after[0]!r}:{after[1]}",
            "quarantined": [q.model_dump(mode="json") for q in await records.quarantined()],
        }
    )


def _cursor(raw: str | None) -> tuple[float, str] | None:
    if raw is None:
        return None
    score, colon, after = raw.partition(":")
    try:
        value = float(score)
    except ValueError:
        value = float("nan")
    if not colon or not after or value != value or value in (float("inf"), float("-inf")):
        raise EditError(
            [FieldError("cursor", "the next_cursor of an earlier page, as given")], status=400
        )
    return value, after


async def get_rollout(request: web.Request) -> web.Response:
    try:
        record = await request.app[ROLLOUTS].get(request.match_info["id"])
    except Unreadable as exc:
        return error(409, "unreadable", str(exc))
    if record is None:
        raise EditError([FieldError("id", f"no rollout {request.match_info['id']!r}")], status=404)
    state = record.state
    answer = record.stored()
    # What a person asks first: where is it, for how long, with which weights.
    answer["time_in_phase_s"] = (
        round(time.time() - state.phase_started_at, 1)
        if state.status not in ("pending", "promoted", "rolled_back", "aborted", "completed")
        else None
    )
    document = await request.app[STORE].read()
    route = next((r for r in document.routes if r.name == record.route), None) if document else None
    answer["weights"] = {t.name: t.weight for t in route.tracks} if route is not None else None
    return json_response(answer)


COMMANDS = ("approve", "promote", "pause", "resume", "abort")


async def rollout_command(request: web.Request) -> web.Response:
    """An optional ``{"reason": "..."}``: recorded with the actor (``X-Splitgate-Actor``) in
    the rollout's history and in the audit reason of the weights it writes."""
    name = request.match_info["command"]
    body = await read_json(request) if (await request.read()).strip() else None
    if body is not None:
        if not isinstance(body, dict):
            raise EditError([FieldError("body", 'an object: {"reason": "..."}')])
        errors = [FieldError(key, "unknown field") for key in sorted(set(body) - {"reason"})]
        if not isinstance(body.get("reason", ""), str):
            errors.append(FieldError("reason", "a string"))
        if errors:
            raise EditError(errors)
    actor, reason = actor_and_reason(request, body)
    change = request.app[ROLLOUTS].command(request.match_info["id"], name, actor, reason)
    return await _answer(request, change)


async def check_item(request: web.Request) -> web.Response:
    """Attest a checklist item: ``POST /v1/rollouts/{id}/checks/{item}`` with an optional
    ``{"note": "..."}``; recorded with the actor (``X-Splitgate-Actor``) and the time."""
    body = await request.read()
    note = ""
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            raise EditError([FieldError("body", "not valid JSON")], status=400) from None
        if not isinstance(data, dict) or not isinstance(data.get("note", ""), str):
            raise EditError([FieldError("note", "a string")])
        note = data.get("note", "")[:1000]
    actor, _ = actor_and_reason(request, None)
    rollouts = request.app[ROLLOUTS]
    try:
        return await _answer(
            request,
            rollouts.attest(request.match_info["id"], request.match_info["item"], actor, note),
        )
    except UnknownItem as exc:
        raise EditError([FieldError("item", str(exc))], status=404) from None


async def _answer(request: web.Request, change: Awaitable[RolloutRecord | None]) -> web.Response:
    """The record a command left, or why it was refused (409), or 404 for no such rollout."""
    try:
        record = await change
    except CommandRefused as exc:
        return error(409, "not_applicable", str(exc))
    except RolloutConflict as exc:
        return error(409, "conflict", str(exc))
    except Unreadable as exc:
        return error(409, "unreadable", str(exc))
    if record is None:
        raise EditError([FieldError("id", f"no rollout {request.match_info['id']!r}")], status=404)
    return json_response(record.stored())


async def rollout_verdicts(request: web.Request) -> web.Response:
    """Every look's verdicts with their figures, newest first (``?limit=``, default 20)."""
    raw = request.query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise EditError([FieldError("limit", "a number from 1 to 1000")], status=400)
    rollouts = request.app[ROLLOUTS]
    if not await rollouts.records.exists(request.match_info["id"]):
        raise EditError([FieldError("id", f"no rollout {request.match_info['id']!r}")], status=404)
    looks = await rollouts.verdicts(request.match_info["id"], int(raw))
    return json_response({"looks": [look.model_dump(mode="json") for look in looks]})


CHECK_BODY = {"type": "object", "properties": {"note": {"type": "string"}}}
COMMAND_BODY = {
    "type": "object",
    "properties": {"reason": {"type": "string"}},
    "additionalProperties": False,
}

OPERATIONS = (
    Operation(
        "POST",
        "/v1/rollouts",
        start_rollout,
        "Start a rollout from a plan (canary, blue-green, big bang or A/B test)",
        ok="The rollout's record",
        status=201,
        returns=RolloutRecord,
        errors=(404, 409, 422),
        body={"type": "object"},
        body_types={"application/yaml": {"type": "string"}},
    ),
    Operation(
        "GET",
        "/v1/rollouts",
        list_rollouts,
        "Active rollouts, then finished ones newest first (paged), and the quarantined records "
        "with their reason",
        ok="`rollouts`, `next_cursor` (null on the last page), `quarantined`",
        returns=RolloutPage,
        errors=(400,),
        params=(LIMIT_QUERY, {"name": "cursor", "in": "query", "schema": {"type": "string"}}),
    ),
    Operation(
        "GET",
        "/v1/rollouts/{id}",
        get_rollout,
        "Phase, weights, time in phase, what it waits for, last verdicts, history",
        ok="The record, with the route's `weights` now and the `time_in_phase_s`; 409 when "
        "the stored record does not read (it is quarantined)",
        returns=RolloutView,
        errors=(404, 409),
        params=(ID_PARAM,),
    ),
    Operation(
        "GET",
        "/v1/rollouts/{id}/verdicts",
        rollout_verdicts,
        "Every look's verdicts with the figures they rest on, newest first",
        ok="The looks",
        returns=RolloutLooks,
        errors=(400, 404),
        params=(ID_PARAM, LIMIT_QUERY),
    ),
    Operation(
        "POST",
        "/v1/rollouts/{id}/checks/{item}",
        check_item,
        "Attest a checklist item (recorded with X-Splitgate-Actor and the time)",
        ok="The record",
        returns=RolloutRecord,
        errors=(400, 404, 409, 422),
        params=(ID_PARAM,),
        body=CHECK_BODY,
        body_required=False,
    ),
    # Only the commands: POST to /v1/rollouts/{id}/verdicts is then a 405 naming GET.
    Operation(
        "POST",
        f"/v1/rollouts/{{id}}/{{command:{'|'.join(COMMANDS)}}}",
        rollout_command,
        "approve, promote, pause, resume or abort, with an optional reason (recorded with "
        "X-Splitgate-Actor in the history); 409 names the state when it does not apply",
        ok="The record",
        returns=RolloutRecord,
        errors=(400, 404, 409, 422),
        params=(ID_PARAM,),
        body=COMMAND_BODY,
        body_required=False,
    ),
)
