"""The request handler: choose a track, send upstream, relay the answer as it arrives.

Invariants:
- No await on anything but the client's socket and the upstream's. Routing is a pure
  function of the current routing table and the request.
- Retries happen only before the response started, within the first-byte deadline, and never
  resend a request the upstream may have received unless the method is idempotent.
- Every byte the upstream sent reaches the client. If the upstream breaks mid-body, the
  client's connection is closed without a clean end, so the client sees a cut, never a
  complete-looking answer.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from itertools import count

from aiohttp import web
from aiohttp.web_exceptions import HTTPRequestEntityTooLarge

from config.feedback import Signer
from config.schema import ProxySettings
from config.stickiness import ClientAddress, sticky_key
from proxy.answers import abort, reject_early, stamp, too_large, upstream_failure
from proxy.body import StreamedBody
from proxy.client import Body, UpstreamClient, UpstreamError, UpstreamResponse
from proxy.decisions import DecisionLog
from proxy.endpoints import Endpoint, EndpointPool
from proxy.errors import error_response
from proxy.exchange import Exchange, failure_class, note_primary, record
from proxy.headers import RequestHeaderFilter
from proxy.relay import Relay
from proxy.shadow import Mirror
from proxy.shadow_route import CompiledShadow
from proxy.table import CompiledFlag, CompiledRoute, CompiledTrack, TableRef
from proxy.watchdog import Watchdog

log = logging.getLogger("splitgate.proxy")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class Forwarder:
    def __init__(
        self,
        table: TableRef,
        settings: ProxySettings,
        client: UpstreamClient,
        pool: EndpointPool,
        internal_secret: str | None,
        signing_key: bytes,
        decisions: DecisionLog | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        self._table = table
        self._client = client
        self._pool = pool
        self._timeouts = settings.timeouts
        self._limits = settings.limits
        self._retries = settings.retries
        self._override_header = settings.override.header
        self._secret_header = settings.override.secret_header
        self._secret = internal_secret.encode() if internal_secret else None
        self._headers = RequestHeaderFilter((self._override_header, self._secret_header))
        self._client_address = ClientAddress(settings.trusted_proxies)
        self._id_prefix = os.urandom(6).hex()
        self._sign = Signer(signing_key)
        self._ids = count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relay = Relay(pool, settings.timeouts.idle, self._stamp)
        self._decisions = decisions or DecisionLog()  # inactive: keeps nothing
        self._mirror = mirror or Mirror(client, pool, signing_key)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        target = request.raw_path  # the request line's target, as sent
        path = target.partition("?")[0] if target[:1] == "/" else request.rel_url.raw_path
        rejected = reject_early(request, path)
        if rejected is not None:
            return rejected
        headers = request.headers
        table = self._table.current
        # request.host (absolute-form authority, else Host) only selects a route, never an address.
        route = table.match(path, request.host if table.by_host else None)
        if route is None:
            return error_response(404, "no_route", f"no route matches {path!r}")
        client_id = headers.get("x-request-id")
        if client_id is not None and not _REQUEST_ID.match(client_id):
            client_id = None
        nonce = f"{self._id_prefix}{next(self._ids):010x}"
        loop = self._loop
        if loop is None:
            # Once: on Python 3.11 each get_running_loop() is a getpid() system call.
            loop = self._loop = asyncio.get_running_loop()
        started = loop.time()
        body: bytes | None = None
        if route.reads_body:
            early = await self._early_body(request, started)
            if isinstance(early, web.Response):
                return stamp(early, client_id or nonce, None, table.generation)
            body = early
        chosen = self._choose(route, request, body)
        if isinstance(chosen, web.Response):
            return stamp(chosen, client_id or nonce, None, table.generation)
        track, forced, flag, key = chosen
        if not forced and flag is None:
            track.stats.assigned += 1  # the weighted split's decisions only (sample ratio)
        # Our own ids are signed for the track that serves them: feedback on an id needs no
        # lookup (config.feedback). A client's own id is kept, and a signed one added beside.
        request_id = client_id or self._sign(nonce, track.feedback_payload)

        task = asyncio.current_task(loop)
        assert task is not None
        dog = Watchdog(loop, task, started + self._timeouts.client_body, "client_body")
        exchange = Exchange(
            request_id, nonce, client_id is not None, track, flag, table.generation, started
        )
        try:
            response = await self._forward(request, route, track, forced, dog, exchange, body)
        except asyncio.CancelledError:
            if exchange.upstream is not None:
                exchange.upstream.close()
            if not dog.fired or task.uncancel() > 0:
                exchange.error = "client_gone"
                raise  # the client went away (or the server is shutting down)
            response = self._timed_out(request, exchange, dog.phase)
        finally:
            dog.stop()
            if exchange.endpoint is not None:
                exchange.endpoint.in_flight -= 1
            now = loop.time()
            record(exchange, now)
            self._decisions.note(exchange, route, forced, key)
            if exchange.shadow is not None:
                note_primary(exchange, exchange.shadow, now)
                self._mirror.primary_done(exchange.shadow)
        if not response.prepared:
            self._stamp(response, exchange)
        return response

    def _stamp(self, response: web.StreamResponse, exchange: Exchange) -> None:
        track = exchange.track
        request_id = exchange.request_id
        if track is not None and (exchange.client_id or track is not exchange.chosen):
            signed = self._sign(exchange.nonce, track.feedback_payload)
            if exchange.client_id:
                response.headers["X-Splitgate-Feedback-Id"] = signed
            else:
                request_id = signed  # fell back to the baseline: sign for who answered
        stamp(response, request_id, track, exchange.generation)
        if exchange.flag is not None:
            response.headers["X-Splitgate-Flag"] = exchange.flag.name

    def _choose(
        self, route: CompiledRoute, request: web.BaseRequest, body: bytes | None
    ) -> tuple[CompiledTrack, bool, CompiledFlag | None, str | None] | web.Response:
        """The trusted override, else the first feature flag that releases the request,
        else the weighted split: (track, forced by the override, deciding flag, sticky key).

        ``body`` is the buffered body when the route has a ``conversation`` source."""
        headers = request.headers
        wanted = headers.get(self._override_header)
        if wanted is not None and self._secret is not None:
            given = headers.get(self._secret_header)
            if given is not None and hmac.compare_digest(given.encode(), self._secret):
                track = route.tracks.get(wanted)
                if track is None:
                    return error_response(
                        400,
                        "unknown_track",
                        f"route {route.name!r} has no track {wanted!r}",
                        param=self._override_header,
                    )
                return track, True, None, None
        key = sticky_key(route.stickiness, headers, request.remote, self._client_address, body)
        flags = route.flags
        if flags is not None:
            flag = flags.decide(headers.get, key)
            if flag is not None:
                return flag.track, False, flag, key
        return route.pick(key), False, None, key

    async def _forward(
        self,
        request: web.BaseRequest,
        route: CompiledRoute,
        track: CompiledTrack,
        forced: bool,
        dog: Watchdog,
        exchange: Exchange,
        early: bytes | None,
    ) -> web.StreamResponse:
        exchange.track = track
        body = early if early is not None else await self._read_body(request, dog)
        if isinstance(body, web.Response):
            exchange.error = "proxy_4xx"
            return body
        plan = self._plan(route, track, forced)
        if not plan:
            exchange.error = "connect"
            return error_response(
                503, "no_healthy_upstream", f"track {track.name!r} has no healthy upstream"
            )
        streamed: StreamedBody | None = None
        payload: Body
        if isinstance(body, StreamedBody):
            streamed, payload = body, body.chunks()
        else:
            payload = body
        outgoing = self._headers.upstream_headers(
            request.headers,
            request.headers.items(),
            request.remote,
            exchange.request_id,
            request.content_length if streamed is not None else None,
        )
        target = request.raw_path
        if target[:1] != "/":
            target = request.rel_url.raw_path_qs  # absolute-form: the path and query only
        shadow = route.shadow
        if shadow is not None and request.method == "POST" and track.name != shadow.track:
            self._mirror_copy(exchange, shadow, request.method, target, outgoing, body)
        dog.set(exchange.started + self._timeouts.first_byte, "first_byte")
        upstream, error = await self._send(
            request.method, target, outgoing, payload, streamed, plan, exchange
        )
        if exchange.shadow is not None:
            self._mirror.launch(exchange.shadow)
        if upstream is None:
            response = upstream_failure(exchange, error, streamed)
            exchange.error = failure_class(response.status, error)
            return response
        # The request is sent: a long stream must not hold its body and headers.
        del body, payload, outgoing, plan
        loop = self._loop
        assert loop is not None
        return await self._relay.answer(request, upstream, dog, exchange, loop)

    def _mirror_copy(
        self,
        exchange: Exchange,
        shadow: CompiledShadow,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | StreamedBody | None,
    ) -> None:
        """Draw this request for the route's shadow; if drawn, keep what its copy sends (it
        is launched once the primary's answer has its head, or the primary has ended)."""
        ticket = self._mirror.ticket(shadow, exchange.nonce, exchange.request_id)
        if ticket is None:
            return
        if isinstance(body, StreamedBody):
            self._mirror.streamed(ticket)  # not kept: it cannot be copied
            return
        exchange.shadow = ticket
        self._mirror.hold(ticket, method, target, headers, body)

    def _plan(
        self, route: CompiledRoute, track: CompiledTrack, forced: bool
    ) -> list[tuple[CompiledTrack, Endpoint]]:
        now = self._pool.now()
        plan = [(track, e) for e in track.balancer.order(now)]
        if not forced and track is not route.baseline and self._retries.fallback_to_baseline:
            plan += [(route.baseline, e) for e in route.baseline.balancer.order(now)]
        return plan[: self._retries.max_attempts]

    async def _send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        payload: Body,
        streamed: StreamedBody | None,
        plan: list[tuple[CompiledTrack, Endpoint]],
        exchange: Exchange,
    ) -> tuple[UpstreamResponse | None, UpstreamError | None]:
        error: UpstreamError | None = None
        for track, endpoint in plan:
            exchange.track = track
            exchange.endpoint = endpoint
            endpoint.in_flight += 1
            try:
                upstream = await self._client.send(endpoint, method, target, headers, payload)
            except UpstreamError as exc:
                endpoint.in_flight -= 1
                exchange.endpoint = None
                self._pool.failed(endpoint, track.balancer.endpoints)
                log.debug("upstream %s failed (%s): %s", endpoint.url, exc.kind, exc)
                error = exc
                if not _may_retry(exc, method, streamed):
                    break
                continue
            exchange.upstream = upstream
            return upstream, None
        return None, error

    async def _read_body(
        self, request: web.BaseRequest, dog: Watchdog
    ) -> bytes | StreamedBody | web.Response | None:
        if not request.body_exists:
            return None
        limits = self._limits
        length = request.content_length
        if length is not None and length > limits.max_body_bytes:
            return too_large(limits.max_body_bytes)
        if length is not None and length <= limits.buffer_body_bytes:
            content = request.content
            if content.is_eof():
                # All of it came with the head: take it without a wait, and without the copy
                # request.read() keeps for the request's whole life (a long stream's too).
                return content.read_nowait()
            try:
                return await request.read()
            except HTTPRequestEntityTooLarge:
                return too_large(limits.max_body_bytes)
        return StreamedBody(request.content, limits.max_body_bytes, dog.deadline)

    async def _early_body(
        self, request: web.BaseRequest, started: float
    ) -> bytes | web.Response | None:
        """The body, read before the track is chosen so that a ``conversation`` source can
        find its key in it: only one the proxy buffers anyway, so nothing more is held.
        None when there is none or it will stream. Read before any track is chosen, a body
        that times out (408) or is refused (413) counts on no track."""
        length = request.content_length
        if not request.body_exists or length is None or length > self._limits.buffer_body_bytes:
            return None
        content = request.content
        if content.is_eof():
            return content.read_nowait()  # as _read_body: no wait, no copy kept
        try:
            async with asyncio.timeout_at(started + self._timeouts.client_body):
                return await request.read()
        except TimeoutError:
            return error_response(
                408, "request_timeout", "the request body did not arrive in time", close=True
            )
        except HTTPRequestEntityTooLarge:
            return too_large(self._limits.max_body_bytes)

    def _timed_out(
        self, request: web.BaseRequest, exchange: Exchange, phase: str
    ) -> web.StreamResponse:
        exchange.error = "proxy_4xx" if phase == "client_body" else "timeout"
        response = exchange.response
        if response is not None and response.prepared:
            abort(request, response)
            return response
        if phase == "client_body":
            return error_response(
                408, "request_timeout", "the request body did not arrive in time", close=True
            )
        if exchange.endpoint is not None and exchange.track is not None:
            self._pool.failed(exchange.endpoint, exchange.track.balancer.endpoints)
        return error_response(504, "upstream_timeout", "the upstream did not answer in time")


def _may_retry(error: UpstreamError, method: str, streamed: StreamedBody | None) -> bool:
    if streamed is not None and streamed.started:
        return False
    return error.kind == "connect" or method in IDEMPOTENT
