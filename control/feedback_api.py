"""``POST /v1/feedback``: quality signals for an answered request, by its signed id, counted
for the track and version that answered (``config.feedback``)."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from config.feedback import Feedback, feedback_fields, verify
from config.loader import reason
from config.metrics import field_name
from control.api import SIGNING_KEY, WINDOWS, error, json_response, read_json
from control.api_table import Operation
from control.edits import EditError, FieldError


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
    source = verify(key, received.request_id)
    if source is None:
        raise EditError(
            [
                FieldError(
                    "request_id",
                    "not an id issued by splitgate (forged, or signed with another key)",
                )
            ]
        )
    route, track, version = source
    fields = {
        field_name(track, version, name): value for name, value in feedback_fields(received).items()
    }
    await request.app[WINDOWS].add(route, fields)
    return json_response(
        {"accepted": True, "route": route, "track": track, "version": version}, status=202
    )


def _feedback_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(".".join(str(p) for p in e["loc"]) or "body", reason(e))
        for e in exc.errors(include_url=False)
    ]


OPERATIONS = (
    Operation(
        "POST",
        "/v1/feedback",
        feedback,
        "Hallucination, rating (1-5) and comment for an answered request, by its X-Request-Id "
        "(or X-Splitgate-Feedback-Id)",
        ok="Counted for the track and version that answered",
        status=202,
        errors=(400, 422),
        body={
            "type": "object",
            "required": ["request_id"],
            "properties": {
                "request_id": {"type": "string"},
                "hallucination": {"type": "boolean"},
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "comment": {"type": "string"},
            },
            "additionalProperties": False,
        },
    ),
)
