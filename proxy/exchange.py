"""What one proxied request has in flight, and where it counts once it ends.

``Exchange`` follows a request from the choice of its track to its last byte, so that the
handler can clean up and count it whatever way it ends (answered, cut, timed out, or the
client gone).
"""

from __future__ import annotations

from aiohttp import web

from proxy.client import UpstreamError, UpstreamResponse
from proxy.endpoints import Endpoint
from proxy.shadow import Ticket
from proxy.stats import TrackStats
from proxy.table import CompiledFlag, CompiledTrack


class Exchange:
    """What one request has in flight, for clean-up whatever way it ends."""

    __slots__ = (
        "chosen",
        "client_id",
        "endpoint",
        "error",
        "first_byte",
        "flag",
        "generation",
        "nonce",
        "request_id",
        "response",
        "shadow",
        "started",
        "track",
        "upstream",
    )

    def __init__(
        self,
        request_id: str,
        nonce: str,
        client_id: bool,
        chosen: CompiledTrack,
        flag: CompiledFlag | None,
        generation: int,
        started: float,
    ) -> None:
        self.request_id = request_id
        self.nonce = nonce
        self.client_id = client_id
        self.chosen = chosen
        self.flag = flag
        """The feature flag that released this request to ``chosen``, if one did."""
        self.generation = generation
        self.started = started
        self.first_byte: float | None = None
        self.error: str | None = None
        """The error class this request counts under (see ``proxy.stats``), if any."""
        self.endpoint: Endpoint | None = None
        self.track: CompiledTrack | None = None
        self.upstream: UpstreamResponse | None = None
        self.response: web.StreamResponse | None = None
        self.shadow: Ticket | None = None
        """The request is mirrored: its answer is noted for the pair (``proxy.shadow``)."""

    def stats(self) -> TrackStats | None:
        """Where this request counts: its flag's counts if the flag's track answered."""
        track = self.track
        if track is None:
            return None
        flag = self.flag
        return flag.stats if flag is not None and flag.track is track else track.stats


def record(exchange: Exchange, now: float) -> None:
    stats = exchange.stats()
    if stats is None:
        return
    started = exchange.started
    first = exchange.first_byte
    stats.record(
        (now - started) * 1000.0,
        None if first is None else (first - started) * 1000.0,
        exchange.error,
    )


def note_primary(exchange: Exchange, ticket: Ticket, now: float) -> None:
    """What the pair keeps of the primary's answer, once its exchange has ended."""
    side = ticket.primary
    track = exchange.track
    if track is not None:
        side.track, side.version = track.name, track.version
    upstream = exchange.upstream
    side.status = upstream.status if upstream is not None else None
    side.error = exchange.error
    side.latency_ms = (now - exchange.started) * 1000.0
    first = exchange.first_byte
    side.ttfb_ms = None if first is None else (first - exchange.started) * 1000.0


def failure_class(status: int, error: UpstreamError | None) -> str:
    if status < 500:
        return "proxy_4xx"  # 408 or 413 from the streamed request body
    if error is None or error.kind == "connect":
        return "connect"
    return "timeout" if error.kind == "timeout" else "cut"
