"""Who and why of a write of a flag, a segment or the attributes (``control.api.write_part``
does the write): the actor, and the reason from a JSON body or else ``?reason=``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control.api import actor_and_reason
from control.store import Change


def change_of(request: web.Request, body: Any, action: str, target: str) -> Change:
    """The audit's who and why: ``reason`` from a JSON body, else from ``?reason=``."""
    if not (isinstance(body, dict) and "reason" in body):
        body = {"reason": request.query.get("reason", "")}
    actor, reason = actor_and_reason(request, body)
    return Change(actor, reason, action, target)


def without_reason(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "reason"} if isinstance(body, dict) else body
