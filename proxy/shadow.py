"""Shadow traffic: a sampled share of a route's POST requests, copied to its shadow track.

The user only ever sees the primary. For a request the draw picks (``Mirror.ticket``), the
forwarder hands the complete body to ``Mirror.launch`` once the primary's request is sent:
the copy then runs as a task of its own, with its own deadline (``Shadow.timeout``), reads
the shadow's answer to the end (a stream is consumed, never relayed), is never retried, and
whatever happens to it (refused, slow, reset mid-stream) stays inside the task: it is
counted under the shadow track with ``mode="shadow"`` and never reaches the user.

Limits, per proxy process and route: ``max_in_flight`` copies at once, and
``max_tokens_per_minute`` of the tokens the shadow reported this minute. A request over a
limit, or whose body streams (larger than ``buffer_body_bytes``), is not mirrored and is
counted in ``dropped``. The primary's side of the pair is noted when its exchange ends
(``primary_done``); once both sides are in, the pair waits for the flusher
(``proxy.shadow_pairs``), which builds and writes it in the background.

The request path pays one attribute test on a route without a shadow, and one random draw
on a route with one; everything else is paid by the mirrored requests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from config.feedback import Signer, pair_payload
from config.shadow import CAPTURE_BYTES
from proxy.client import UpstreamClient, UpstreamError
from proxy.endpoints import Endpoint, EndpointPool
from proxy.shadow_route import CompiledShadow
from proxy.stats import read_tail

log = logging.getLogger("splitgate.proxy.shadow")

SHADOW_HEADER = ("x-splitgate-shadow", "1")
"""Sent with every copy, so that the shadow's backend can tell a copy from a user's request."""
MAX_READY = 10_000
"""Pairs waiting for the flusher at most; more are dropped (and counted)."""
DROP_REASONS = ("in_flight", "tokens", "connections", "streamed_body", "pairs")
MAX_READY_BYTES = 64 * 1024 * 1024
"""Captured answer bytes the waiting pairs may hold at most; a pair beyond is dropped."""


class Side:
    """One answer of a pair, as the proxy saw it (built into ``config.shadow.PairSide``)."""

    __slots__ = (
        "body",
        "completion",
        "error",
        "finished",
        "latency_ms",
        "prompt",
        "sse",
        "status",
        "track",
        "truncated",
        "ttfb_ms",
        "version",
    )

    def __init__(self, track: str, version: str) -> None:
        self.track = track
        self.version = version
        self.status: int | None = None
        self.error: str | None = None
        self.latency_ms: float | None = None
        self.ttfb_ms: float | None = None
        self.prompt: int | None = None
        self.completion: int | None = None
        self.finished = True
        self.sse = False
        self.body: list[bytes] = []
        """The first ``CAPTURE_BYTES`` of the answer's body (a stream's events included)."""
        self.truncated = False


class Ticket:
    """One mirrored request, from the draw to its pair."""

    __slots__ = (
        "at",
        "dropped",
        "nonce",
        "pair_id",
        "primary",
        "request",
        "request_id",
        "route",
        "shadow",
        "waiting",
    )

    def __init__(self, route: CompiledShadow, nonce: str, request_id: str) -> None:
        self.route = route
        self.nonce = nonce
        self.request_id = request_id
        self.pair_id = ""
        """Signed when the copy is launched (``config.feedback.pair_payload``)."""
        self.dropped = False
        """Not copied after all (over a limit when it was to be launched): no pair."""
        self.request: tuple[str, str, list[tuple[str, str]], bytes | None] | None = None
        """Method, target, headers and body of the copy, until it is launched."""
        self.at = time.time()
        self.primary = Side("", "")
        """Filled in by the forwarder and the relay as the primary's answer goes by."""
        self.shadow = Side(route.track, route.version)
        self.waiting = 2
        """Sides still to come in: the pair is ready at 0."""


@dataclass
class Gate:
    """One route's limits on this process: copies in flight, tokens used this minute."""

    in_flight: int = 0
    minute: int = 0
    tokens: int = 0
    """Reported by this minute's copies (``minute``: monotonic minutes); see ``this_minute``."""
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    def this_minute(self) -> int:
        """The tokens the copies reported this minute (the count starts again each minute)."""
        minute = int(time.monotonic() // 60)
        if minute != self.minute:
            self.minute, self.tokens = minute, 0
        return self.tokens


class Mirror:
    def __init__(self, client: UpstreamClient, pool: EndpointPool, signing_key: bytes) -> None:
        self._client = client
        self._pool = pool
        self._sign = Signer(signing_key)
        self._draw = random.random
        self.gates: dict[str, Gate] = {}
        self.ready: deque[Ticket] = deque()
        """Pairs with both sides in, for the flusher."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.ready_bytes = 0
        """Captured bytes the pairs in ``ready`` hold."""
        self.keeps_pairs = False
        """Something writes the pairs (a proxy following Redis): until then none is kept."""

    def gate(self, route: str) -> Gate:
        gate = self.gates.get(route)
        if gate is None:
            gate = self.gates[route] = Gate()
        return gate

    def ticket(self, shadow: CompiledShadow, nonce: str, request_id: str) -> Ticket | None:
        """A ticket when this request is drawn for mirroring (the limits are checked when the
        copy is to start: ``launch``)."""
        if self._draw() * 10_000 >= shadow.threshold:
            return None
        return Ticket(shadow, nonce, request_id)

    def streamed(self, ticket: Ticket) -> None:
        """The primary's body streams: it is not kept, so it cannot be copied."""
        ticket.dropped = True
        self.gate(ticket.route.route).dropped["streamed_body"] += 1

    def hold(
        self,
        ticket: Ticket,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> None:
        """Keep the copy's request (references only) until ``launch``."""
        ticket.request = (method, target, headers, body)

    def launch(self, ticket: Ticket) -> None:
        """Send the copy in the background, once the primary has its answer's head (or has
        ended without one): the copy's work never sits between a request and its upstream.
        Once only. Over a limit, or once the proxy is closing, it is dropped (and counted)."""
        request = ticket.request
        if request is None:
            return
        ticket.request = None
        shadow = ticket.route
        endpoint = self._over_limits(shadow)
        if endpoint is False or self._closed:
            ticket.dropped = True
            return
        self.gate(shadow.route).in_flight += 1
        payload = pair_payload(shadow.route, shadow.track, shadow.version, int(time.time()))
        ticket.pair_id = self._sign(ticket.nonce, payload)
        method, target, headers, body = request
        task = asyncio.get_running_loop().create_task(
            self._copy(ticket, endpoint, method, target, [*headers, SHADOW_HEADER], body)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _over_limits(self, shadow: CompiledShadow) -> Endpoint | Literal[False] | None:
        """The endpoint the copy goes to (None: the shadow track has no healthy one, which the
        copy counts as a failed connect), or False when a limit is reached (counted)."""
        gate = self.gate(shadow.route)
        settings = shadow.settings
        if gate.in_flight >= settings.max_in_flight:
            gate.dropped["in_flight"] += 1
            return False
        budget = settings.max_tokens_per_minute
        if budget is not None and gate.this_minute() >= budget:
            gate.dropped["tokens"] += 1
            return False
        order = shadow.balancer.order(self._pool.now())
        if not order:
            return None
        if not self._client.has_room(order[0]):
            gate.dropped["connections"] += 1  # a copy never queues for a user's connection
            return False
        return order[0]

    def primary_done(self, ticket: Ticket) -> None:
        """The primary's exchange ended (``ticket.primary`` is filled in)."""
        self.launch(ticket)  # if the primary ended before its answer's head
        self._arrived(ticket)

    def _arrived(self, ticket: Ticket) -> None:
        ticket.waiting -= 1
        if ticket.waiting or ticket.dropped:
            return
        if not self.keeps_pairs or ticket.route.settings.max_pairs == 0:
            return
        size = captured(ticket)
        if len(self.ready) >= MAX_READY or self.ready_bytes + size > MAX_READY_BYTES:
            self.gate(ticket.route.route).dropped["pairs"] += 1
            return
        self.ready.append(ticket)
        self.ready_bytes += size

    def take_ready(self, most: int) -> list[Ticket]:
        """Up to ``most`` pairs waiting for the flusher, oldest first."""
        ready = self.ready
        batch = [ready.popleft() for _ in range(min(len(ready), most))]
        self.ready_bytes -= sum(captured(t) for t in batch)
        return batch

    async def _copy(
        self,
        ticket: Ticket,
        endpoint: Endpoint | None,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> None:
        shadow = ticket.route
        side = ticket.shadow
        loop = asyncio.get_running_loop()
        started = loop.time()
        first: float | None = None
        upstream = None
        sink: Sink | None = None
        sent: Endpoint | None = None  # the endpoint whose in-flight count this copy holds
        try:
            async with asyncio.timeout(shadow.settings.timeout):
                if endpoint is None:
                    side.error = "connect"
                    return
                sent = endpoint
                endpoint.in_flight += 1
                upstream = await self._client.send(endpoint, method, target, headers, body)
                side.status = upstream.status
                content_type = upstream.header("content-type") or ""
                side.sse = content_type.startswith("text/event-stream")
                upstream.forget_head()
                sink = Sink(side, loop)
                upstream.pipe(sink)  # chunks land in the sink: no wake-up per chunk
                while chunk := await upstream.read():
                    sink(chunk)
                first = sink.first if sink.first is not None else loop.time()
                upstream.release()
                upstream = None
                _facts(side, sink.previous + sink.last, content_type)
        except TimeoutError:
            side.error = "timeout"
        except UpstreamError as exc:
            side.error = _error_class(exc)
        except asyncio.CancelledError:
            side.error = "client_gone"  # the proxy is shutting down
            raise
        except Exception:  # a copy must never take anything else down
            log.exception("shadow copy to %s failed", shadow.track)
            side.error = "cut"
        finally:
            if upstream is not None:
                upstream.close()
            if sent is not None:
                sent.in_flight -= 1
            if first is None and sink is not None:
                first = sink.first  # the body began, then broke off or ran out of time
            self._done(ticket, side, started, first, loop.time())

    def _done(
        self, ticket: Ticket, side: Side, started: float, first: float | None, now: float
    ) -> None:
        shadow = ticket.route
        gate = self.gate(shadow.route)
        gate.in_flight -= 1
        side.latency_ms = (now - started) * 1000.0
        side.ttfb_ms = None if first is None else (first - started) * 1000.0
        stats = shadow.stats
        stats.record(side.latency_ms, side.ttfb_ms, side.error)
        if side.prompt is not None or side.completion is not None:
            prompt, completion = side.prompt or 0, side.completion or 0
            stats.add_usage(prompt, completion)
            if shadow.settings.max_tokens_per_minute is not None:
                gate.tokens = gate.this_minute() + prompt + completion
        self._arrived(ticket)

    async def close(self) -> None:
        """Stop every copy still running (the proxy is stopping): copies are not drained, and
        none starts any more."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for gate in self.gates.values():
            gate.in_flight = 0  # a task cancelled before it ran never gave its slot back


class Sink:
    """Takes every chunk of a copy's body from the connection's callback: notes the first
    byte's time, keeps the first ``CAPTURE_BYTES`` and the last two chunks (the tail)."""

    __slots__ = ("_loop", "_side", "_size", "first", "last", "previous")

    def __init__(self, side: Side, loop: asyncio.AbstractEventLoop) -> None:
        self._side = side
        self._loop = loop
        self._size = 0
        self.first: float | None = None
        self.previous = self.last = b""

    def __call__(self, chunk: bytes) -> bool:
        if self.first is None:
            self.first = self._loop.time()
        if self._size < CAPTURE_BYTES:
            self._side.body.append(chunk)
            self._size += len(chunk)
        else:
            self._side.truncated = True
        self.previous, self.last = self.last, chunk
        return True


def captured(ticket: Ticket) -> int:
    """Bytes of answers a ticket holds (both sides' captures)."""
    return sum(map(len, ticket.primary.body)) + sum(map(len, ticket.shadow.body))


def _facts(side: Side, tail: bytes, content_type: str) -> None:
    """The shadow's status class, usage and completeness, as live traffic counts them."""
    status = side.status or 0
    if status >= 500:
        side.error = "upstream_5xx"
    elif status == 429:
        side.error = "upstream_429"
    if status < 300 and (side.sse or "json" in content_type):
        facts = read_tail(tail, side.sse)
        side.prompt, side.completion = facts.prompt_tokens, facts.completion_tokens
        side.finished = facts.finished
        if not facts.finished and side.error is None:
            side.error = "truncated"


def _error_class(error: UpstreamError) -> str:
    """As live traffic counts it: no connection, no answer in time, or broken off."""
    return error.kind if error.kind in ("connect", "timeout") else "cut"
