"""``POST /v1/feedback``: quality signals for an answered request, by its signed id, counted
for the track and version that answered (``config.feedback``); and a judge's verdict on a
shadow pair, by the pair's id, counted once for the shadow's track and version
(``config.shadow``).

Only the control plane takes verdicts: one verdict per pair needs one place that remembers
which pairs were judged (``{ns}:shadow:judged:<nonce>``), which the proxies' in-memory
counts are not.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from config.feedback import Feedback, feedback_fields, verify, verify_pair
from config.loader import reason
from config.metrics import field_name, shadow_field_name
from config.shadow import VERDICT_FIELDS, Verdict
from control.api import SIGNING_KEY, WINDOWS, error, json_response, read_json
from control.api_table import Operation
from control.edits import EditError, FieldError
from control.openapi_parts import responses
from control.shadow_api import PAIRS
from control.shadow_pairs import JUDGED_TTL_S


async def feedback(request: web.Request) -> web.Response:
    """Quality signals for an answered request, counted for the track and version that gave it."""
    key = request.app[SIGNING_KEY]
    if not key:
        return error(
            503,
            "feedback_not_configured",
            "set SPLITGATE_SIGNING_KEY (the proxies' too) to accept feedback",
        )
    body = await read_json(request)
    try:
        received = Feedback.model_validate(body)
    except ValidationError as exc:
        raise EditError(_feedback_errors(exc)) from None
    if received.shadow_verdict is not None:
        return await _judge(request, key, received.request_id, received.shadow_verdict)
    source = verify(key, received.request_id)
    if source is None:
        why = (
            "a shadow pair's id: judge it with shadow_verdict (hallucination, rating and "
            "comment are for a live answer's id)"
            if verify_pair(key, received.request_id) is not None
            else "not an id issued by splitgate (forged, or signed with another key)"
        )
        raise EditError([FieldError("request_id", why)])
    route, track, version = source
    fields = {
        field_name(track, version, name): value for name, value in feedback_fields(received).items()
    }
    await request.app[WINDOWS].add(route, fields)
    return json_response(
        {"accepted": True, "route": route, "track": track, "version": version}, status=202
    )


async def _judge(request: web.Request, key: bytes, pair_id: str, verdict: Verdict) -> web.Response:
    """Count the pair's verdict once: 202 when counted, 200 for the same verdict again, 409
    for a different one."""
    source = verify_pair(key, pair_id)
    if source is None:
        why = (
            "a live answer's id: a shadow_verdict judges a pair"
            if verify(key, pair_id) is not None
            else "forged, or signed with another key"
        )
        raise EditError([FieldError("request_id", f"not a shadow pair id ({why})")])
    pairs = request.app.get(PAIRS)
    if pairs is None:
        return error(503, "shadow_not_configured", "this control plane does not take verdicts")
    if time.time() - source.issued > JUDGED_TTL_S:
        raise EditError(
            [
                FieldError(
                    "request_id",
                    f"this pair is older than {JUDGED_TTL_S // 86_400} days: verdicts are "
                    "remembered that long, so it could be counted twice",
                )
            ]
        )
    field = shadow_field_name(source.track, source.version, VERDICT_FIELDS[verdict])
    given = await pairs.judge(source.nonce, verdict, source.route, field)
    if given is not None and given != verdict:
        raise EditError(
            [
                FieldError(
                    "shadow_verdict",
                    f"this pair was already judged {given!r}: one verdict per pair",
                )
            ],
            status=409,
        )
    answer: dict[str, Any] = {
        "accepted": True,
        "counted": given is None,
        "route": source.route,
        "track": source.track,
        "version": source.version,
        "shadow_verdict": verdict,
    }
    return json_response(answer, status=202 if given is None else 200)


def _feedback_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(".".join(str(p) for p in e["loc"]) or "body", reason(e))
        for e in exc.errors(include_url=False)
    ]


_STRING = {"type": "string"}
_VERDICT = {"type": "string", "enum": list(VERDICT_FIELDS)}
_ANSWER = {
    "type": "object",
    "required": ["accepted", "route", "track", "version"],
    "properties": {
        "accepted": {"type": "boolean"},
        "counted": {
            "type": "boolean",
            "description": "a verdict: false when this pair already had this very verdict",
        },
        "route": _STRING,
        "track": _STRING,
        "version": _STRING,
        "shadow_verdict": _VERDICT,
    },
}
_OK = "Counted for the track and version that answered (a verdict: for the shadow's)"
_RESPONSES = {
    **responses(_OK, 400, 409, 422, schema=_ANSWER, status=202),
    "200": {
        "description": "A verdict this pair already had: accepted, not counted again",
        "content": {"application/json": {"schema": _ANSWER}},
    },
}

OPERATIONS = (
    Operation(
        "POST",
        "/v1/feedback",
        feedback,
        "Hallucination, rating (1-5) and comment for an answered request, by its X-Request-Id "
        "(or X-Splitgate-Feedback-Id); or a judge's shadow_verdict on a shadow pair, by the "
        "pair's pair_id (one verdict per pair)",
        ok=_OK,
        status=202,
        errors=(400, 409, 422),
        body={
            "type": "object",
            "required": ["request_id"],
            "properties": {
                "request_id": {
                    "type": "string",
                    "description": "the answer's id, or a shadow pair's pair_id",
                },
                "hallucination": {"type": "boolean"},
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "comment": {"type": "string"},
                "shadow_verdict": {
                    **_VERDICT,
                    "description": "the shadow's answer against the primary's; alone, with "
                    "a pair_id as request_id",
                },
            },
            "additionalProperties": False,
        },
        responses=_RESPONSES,
    ),
)
