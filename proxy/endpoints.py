"""Upstream endpoints, their passive health, and balancing inside one track.

An ``Endpoint`` is one upstream base URL. Its health (consecutive failures, ejection) and load
(requests in flight) are plain counters mutated on the event loop thread; they are not part
of the immutable routing table, so they survive table swaps: the ``EndpointPool`` hands out
the same object for the same URL to every table generation.

Outlier detection follows Envoy: after ``consecutive_failures`` connect failures or gateway
errors in a row an endpoint is ejected for ``base_ejection × times ejected`` (capped), and no
more than ``max_ejection_percent`` of a track's endpoints (but always at least one) may be out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from itertools import count
from typing import Literal

from config.keys import MAX_ACKED_UPSTREAMS, UpstreamHealth
from config.schema import OutlierDetection


class Endpoint:
    __slots__ = (
        "base_path",
        "consecutive_failures",
        "ejected_until",
        "ejections",
        "in_flight",
        "origin",
        "url",
    )

    def __init__(self, url: str) -> None:
        self.url = url
        scheme, _, rest = url.partition("://")
        host, slash, path = rest.partition("/")
        self.origin = f"{scheme}://{host}"
        self.base_path = (slash + path).rstrip("/")
        self.in_flight = 0
        self.consecutive_failures = 0
        self.ejections = 0
        self.ejected_until = 0.0

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r}, in_flight={self.in_flight})"

    def available(self, now: float) -> bool:
        return self.ejected_until <= now


class EndpointPool:
    """One ``Endpoint`` per URL for the life of the process, plus the ejection policy."""

    def __init__(
        self, policy: OutlierDetection, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._endpoints: dict[str, Endpoint] = {}

    def get(self, url: str) -> Endpoint:
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            endpoint = self._endpoints[url] = Endpoint(url)
        return endpoint

    def now(self) -> float:
        return self._clock()

    def health(self, urls: Iterable[str]) -> dict[str, UpstreamHealth]:
        """The passive health of ``urls`` (those of the current table), as the ack reports it:
        read from the counters, never a request of its own."""
        now = self._clock()
        out: dict[str, UpstreamHealth] = {}
        for url in urls:
            if len(out) >= MAX_ACKED_UPSTREAMS:
                break
            endpoint = self._endpoints.get(url)
            if endpoint is not None:
                out[url] = UpstreamHealth(
                    ejected=endpoint.ejected_until > now,
                    failures=endpoint.consecutive_failures,
                    ejections=endpoint.ejections,
                )
        return out

    def succeeded(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures = 0

    def failed(self, endpoint: Endpoint, siblings: Sequence[Endpoint]) -> None:
        """Count a connect failure or gateway error; eject the endpoint if it keeps failing."""
        endpoint.consecutive_failures += 1
        policy = self._policy
        if endpoint.consecutive_failures < policy.consecutive_failures:
            return
        now = self._clock()
        if endpoint.ejected_until > now:
            return
        out = sum(1 for e in siblings if e.ejected_until > now)
        allowed = max(1, len(siblings) * policy.max_ejection_percent // 100)
        if out >= allowed:
            return
        endpoint.ejections += 1
        endpoint.ejected_until = now + min(
            policy.base_ejection * endpoint.ejections, policy.max_ejection
        )
        endpoint.consecutive_failures = 0


Balance = Literal["round_robin", "least_request"]


class Balancer:
    """Orders a track's endpoints for one request: the first is tried first.

    Ejected endpoints are left out; an empty order means no healthy upstream.
    """

    __slots__ = ("_endpoints", "_least", "_turn")

    def __init__(self, endpoints: Sequence[Endpoint], balance: Balance) -> None:
        self._endpoints = tuple(endpoints)
        self._least = balance == "least_request"
        self._turn = count()

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

    def order(self, now: float) -> list[Endpoint]:
        endpoints = self._endpoints
        if len(endpoints) == 1:
            only = endpoints[0]
            return [only] if only.ejected_until <= now else []
        healthy = [e for e in endpoints if e.ejected_until <= now]
        if not healthy:
            return healthy
        # Rotate over the healthy ones, so an ejected endpoint's turns are shared evenly.
        start = next(self._turn) % len(healthy)
        healthy = healthy[start:] + healthy[:start]
        if self._least:
            # Stable sort: ties keep the rotation, so equal loads still take turns.
            healthy.sort(key=_in_flight)
        return healthy


def _in_flight(endpoint: Endpoint) -> int:
    return endpoint.in_flight
