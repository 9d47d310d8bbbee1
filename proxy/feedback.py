"""``POST /v1/feedback`` on the proxy's public port: quality signals from users' apps.

The body names a request id the proxy issued; its signature says which route, track and
version answered (``config.feedback``), so the signal is counted there, in memory, and
reaches Redis with the next metrics flush. Forged ids and bad fields get 422; each client
address may send ``rate`` a second (bursts of ``burst``), then gets 429. A verdict on a
shadow pair (``shadow_verdict``) is refused here with 422: only the control plane can keep
one verdict per pair, the proxies count in memory, each on its own.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

from aiohttp import web
from pydantic import ValidationError

from config import jsonsafe
from config.feedback import Feedback, feedback_fields, verify
from config.loader import describe_validation_error
from config.stickiness import ClientAddress
from proxy.stats import StatsRegistry

json_response = partial(web.json_response, dumps=jsonsafe.dumps)
"""Strict JSON answers: no NaN or Infinity (``config.jsonsafe``)."""

MAX_BODY = 16 * 1024
SHADOW_VERDICTS_ELSEWHERE = (
    "verdicts on shadow pairs go to the control plane's admin API (POST /v1/feedback "
    "there), which alone keeps one verdict per pair"
)


class RateLimiter:
    """A token bucket per client address; the least recently seen are forgotten first."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        now = self._clock()
        tokens, seen = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - seen) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return allowed


def _error(status: int, field: str, reason: str) -> web.Response:
    body = {
        "error": {
            "message": f"{field}: {reason}",
            "type": "invalid_request_error",
            "code": "invalid_feedback",
            "param": field,
        },
        "errors": [{"field": field, "reason": reason}],
    }
    return json_response(body, status=status)


class FeedbackEndpoint:
    def __init__(
        self, key: bytes, stats: StatsRegistry, client: ClientAddress, limiter: RateLimiter
    ) -> None:
        self._key = key
        self._stats = stats
        self._client = client
        self._limiter = limiter

    async def handle(self, request: web.BaseRequest) -> web.Response:
        address = self._client.of(request.remote, request.headers.get("x-forwarded-for")) or "-"
        if not self._limiter.allow(address):
            response = _error(429, "feedback", "too many feedback requests from this address")
            response.headers["Retry-After"] = "1"
            return response
        if (request.content_length or 0) > MAX_BODY:
            return _error(413, "body", f"larger than {MAX_BODY} bytes")
        try:
            data = json.loads(await request.read() or b"null")
        except ValueError as exc:
            return _error(400, "body", f"not valid JSON ({exc})")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "body", f"larger than {MAX_BODY} bytes")
        if isinstance(data, dict) and data.get("shadow_verdict") is not None:
            return _error(422, "shadow_verdict", SHADOW_VERDICTS_ELSEWHERE)
        try:
            feedback = Feedback.model_validate(data)
        except ValidationError as exc:
            problem = describe_validation_error(exc, "feedback")[0]
            return _error(422, problem.field or "body", problem.reason)
        source = verify(self._key, feedback.request_id)
        if source is None:
            return _error(
                422,
                "request_id",
                "not an id issued by this splitgate (forged, or signed with another key)",
            )
        route, track, version = source
        self._stats.get(route, track, version).add_feedback(feedback_fields(feedback))
        return json_response(
            {"accepted": True, "route": route, "track": track, "version": version}, status=202
        )
