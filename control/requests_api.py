"""``GET /v1/requests/{id}``: the routing decision behind one answered request.

A signed id (``X-Request-Id``, or ``X-Splitgate-Feedback-Id`` beside a client's own id)
proves its route, track and version by itself (``config.feedback``); the decision log
(``config.decisions``) adds the bucket, the rule, the generation and the time for the
requests a proxy kept. A client's own ``X-Request-Id`` is not signed: it is found only if
its decision was kept, and then everything comes from the log.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from config.decisions import RETENTION_S, Decision, client_field, nonce_of
from config.feedback import verify
from control.api import SIGNING_KEY, error, json_response
from control.api_table import Operation
from control.decision_reader import DecisionReader
from control.edits import EditError, FieldError

DECISIONS = web.AppKey("decisions", DecisionReader)

_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,512}$")
"""What a request id may hold: a signed id, or a client's own id as the proxy keeps it."""


async def get_request(request: web.Request) -> web.Response:
    """The route, track and version of a request by its id, with the logged decision."""
    key = request.app[SIGNING_KEY]
    reader = request.app.get(DECISIONS)
    if not key or reader is None:
        return error(
            503,
            "decision_log_not_configured",
            "set SPLITGATE_SIGNING_KEY (the proxies' too) to look requests up",
        )
    request_id = request.match_info["id"]
    if not _ID.match(request_id):
        raise EditError(
            [FieldError("id", "a request id: 1-512 characters of A-Z a-z 0-9 . _ : @ / + = -")]
        )
    source = verify(key, request_id)
    if source is not None:
        route, track, version = source
        decision = await reader.find(nonce_of(request_id))
        if decision is not None and decision.route != route:
            decision = None  # another process's nonce: not this request's decision
        answer = {"route": route, "track": track, "version": version}
        return json_response(_answer(request_id, True, answer, decision))
    decision = await reader.find(client_field(request_id))
    if decision is None:
        reason = (
            "not an id signed by splitgate (forged, or signed with another key), nor a "
            f"client's X-Request-Id whose decision was kept in the last {RETENTION_S} s"
        )
        return error(404, "unknown_request_id", reason, [FieldError("id", reason)])
    answer = {"route": decision.route, "track": decision.track, "version": decision.version}
    return json_response(_answer(request_id, False, answer, decision))


def _answer(
    request_id: str, signed: bool, answer: dict[str, Any], decision: Decision | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "request_id": request_id,
        "signed": signed,
        **answer,
        "logged": decision is not None,
        "lookup_period_s": RETENTION_S,
    }
    if decision is not None:
        out.update(
            rule=decision.rule,
            bucket=decision.bucket,
            generation=decision.generation,
            at=decision.at,
            chosen=decision.chosen,
            answered=decision.track,
            error=decision.error,
            shadow=None if decision.shadow is None else decision.shadow.model_dump(),
        )
    return out


_STRING = {"type": "string"}
_ANSWER = {
    "type": "object",
    "required": ["request_id", "signed", "route", "track", "version", "logged", "lookup_period_s"],
    "properties": {
        "request_id": _STRING,
        "signed": {"type": "boolean", "description": "the id is splitgate's signed id"},
        "route": _STRING,
        "track": _STRING,
        "version": _STRING,
        "logged": {"type": "boolean", "description": "the decision log holds this request"},
        "lookup_period_s": {"type": "integer", "description": "how long decisions are kept"},
        "rule": {"type": "string", "description": "weights, override or flag:<name>"},
        "bucket": {"type": ["integer", "null"], "minimum": 0},
        "generation": {"type": "integer", "minimum": 0},
        "at": {"type": "number", "description": "Unix time of the decision"},
        "chosen": {"type": "string", "description": "the track the rule chose"},
        "answered": {"type": "string", "description": "the track that answered"},
        "error": {"type": ["string", "null"]},
        "shadow": {
            "type": ["object", "null"],
            "description": "the route mirrored this request: where its copy went",
            "required": ["track", "version", "pair_id"],
            "properties": {"track": _STRING, "version": _STRING, "pair_id": _STRING},
        },
    },
}

OPERATIONS = (
    Operation(
        "GET",
        "/v1/requests/{id}",
        get_request,
        "The routing decision behind a request, by its X-Request-Id (or "
        "X-Splitgate-Feedback-Id): route, track and version from the signed id; bucket, rule, "
        "generation and time when the decision log kept it (sampled, kept an hour)",
        ok="The request's route, track and version, and its logged decision if kept",
        returns=_ANSWER,
        errors=(404, 422),
        params=(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 512},
            },
        ),
    ),
)
