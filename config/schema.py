"""The routing document and the data plane's settings: the contract both planes share.

Every model is frozen and forbids unknown fields, so a typo in YAML or in an admin call fails
at load time with the field named. Weights are percentages with at most two decimals; inside
the proxy they become basis points (1/100 of a percent), the unit of the 10,000 hash buckets.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from config.base import (
    HASH_BUCKETS,
    HEADER_NAME,
    HeaderName,
    Model,
    Name,
    check_header_name,
    invalid,
)
from config.decisions import DecisionLogSettings
from config.durations import Duration
from config.flags import AttributeName, Flag, Segment, check_references
from config.shadow import Shadow

__all__ = ["HASH_BUCKETS", "HeaderName", "Model", "Name"]  # from config.base, for importers


def weight_to_basis_points(weight: float) -> int:
    """Convert a percentage with at most two decimals into basis points (exact)."""
    return round(weight * 100)


def _check_weight(value: float) -> float:
    if value != value or value < 0 or value > 100:
        raise ValueError("a weight is a percentage between 0 and 100")
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise ValueError("a weight has at most two decimals (0.01 % steps)")
    return value


Weight = Annotated[float, AfterValidator(_check_weight)]


def _check_upstream_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r}: an upstream URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"{value!r}: an upstream URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r}: credentials in an upstream URL are not allowed")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: an upstream URL has no query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"{value!r}: bad port ({exc})") from None
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError(f"{value!r}: an upstream URL cannot hold spaces or control characters")
    return value.rstrip("/")


UpstreamURL = Annotated[str, AfterValidator(_check_upstream_url)]


def _check_stickiness(value: str) -> str:
    if value in ("client_ip", "conversation"):
        return value
    kind, sep, name = value.partition(":")
    if not sep or kind not in ("header", "cookie", "conversation") or not name:
        raise ValueError(
            f"{value!r}: a stickiness source is 'header:<name>', 'cookie:<name>', 'client_ip'"
            " or 'conversation' (optionally 'conversation:<id header>')"
        )
    if kind in ("header", "conversation"):
        return f"{kind}:" + check_header_name(name)
    if not HEADER_NAME.match(name):
        raise ValueError(f"{value!r}: {name!r} is not a valid cookie name")
    return value


StickinessSource = Annotated[str, AfterValidator(_check_stickiness)]


class Match(Model):
    path_prefix: str = "/"
    host: str | None = None

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a path prefix starts with '/'")
        if any(seg in (".", "..") for seg in value.split("/")):
            raise ValueError("a path prefix cannot hold '.' or '..' segments")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()


class Track(Model):
    """One version of the service behind a route: its upstream endpoints and its share."""

    name: Name
    version: str = Field(min_length=1, max_length=128)
    upstreams: list[UpstreamURL] = Field(min_length=1)
    weight: Weight

    @field_validator("upstreams")
    @classmethod
    def _unique_upstreams(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for url in value:
            if url in seen:
                raise ValueError(f"upstream {url!r} is listed twice")
            seen.add(url)
        return value

    @field_validator("version")
    @classmethod
    def _printable_version(cls, value: str) -> str:
        if not value.isprintable() or not value.isascii():
            raise ValueError("a version is printable ASCII (it is sent in a response header)")
        return value


class Route(Model):
    """Requests whose path starts with ``match.path_prefix`` go to one of ``tracks``.

    The baseline is the track named by ``baseline``, else the one named ``stable``, else the
    first listed. The candidate is the first listed track that is not the baseline: it owns
    the buckets from 0 upwards, the baseline owns the top, so moving weight between the two
    moves only the users in between.
    """

    name: Name
    match: Match = Match()
    stickiness: list[StickinessSource] = Field(
        default_factory=lambda: ["header:x-user-id", "header:x-session-id", "client_ip"]
    )
    tracks: list[Track] = Field(min_length=1)
    baseline: Name | None = None
    salt: str | None = Field(default=None, min_length=1, max_length=128)
    balance: Literal["round_robin", "least_request"] = "round_robin"
    shadow: Shadow | None = None
    """Mirror a share of the route's POST requests to a track (``config.shadow``)."""

    @field_validator("tracks")
    @classmethod
    def _tracks(cls, value: list[Track]) -> list[Track]:
        names: set[str] = set()
        for track in value:
            if track.name in names:
                raise ValueError(f"track {track.name!r} is listed twice")
            names.add(track.name)
        total = sum(weight_to_basis_points(t.weight) for t in value)
        if total != HASH_BUCKETS:
            shown = ", ".join(f"{t.name}={t.weight:g}" for t in value)
            raise ValueError(f"weights must add up to 100 (got {total / 100:g}: {shown})")
        return value

    @model_validator(mode="after")
    def _baseline_exists(self) -> Route:
        if self.baseline is not None and self.baseline not in {t.name for t in self.tracks}:
            raise ValueError(f"baseline {self.baseline!r} is not one of this route's tracks")
        return self

    @model_validator(mode="after")
    def _shadow_track(self) -> Route:
        shadow = self.shadow
        if shadow is None:
            return self
        if shadow.track not in {t.name for t in self.tracks}:
            raise invalid(
                ("shadow", "track"), f"{shadow.track!r} is not one of this route's tracks", shadow
            )
        if shadow.track == self.baseline_name():
            raise invalid(
                ("shadow", "track"),
                f"{shadow.track!r} is the baseline: the copies would go where the requests do",
                shadow,
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_no_shadow(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("shadow", 0) is None:
            del data["shadow"]  # a document without shadow reads as before (older proxies)
        return data

    def baseline_name(self) -> str:
        if self.baseline is not None:
            return self.baseline
        names = [t.name for t in self.tracks]
        return "stable" if "stable" in names else names[0]

    def hash_salt(self) -> str:
        return self.salt if self.salt is not None else self.name

    def bucket_layout(self) -> list[tuple[str, int]]:
        """(track, exclusive upper bucket) in bucket order: the candidate (first listed
        non-baseline track) from 0, other non-baseline tracks next, the baseline at the top.
        Zero-weight tracks own no buckets."""
        baseline = self.baseline_name()
        order = [t for t in self.tracks if t.name != baseline]
        order += [t for t in self.tracks if t.name == baseline]
        layout: list[tuple[str, int]] = []
        upper = 0
        for track in order:
            share = weight_to_basis_points(track.weight)
            if share:
                upper += share
                layout.append((track.name, upper))
        return layout


class Timeouts(Model):
    """Upstream and client deadlines, in seconds (or '5s', '2m' ...).

    There is deliberately no total limit: a healthy stream may run as long as it keeps sending.
    """

    connect: Duration = 5.0
    first_byte: Duration = 300.0
    idle: Duration = 120.0
    client_header: Duration = 15.0
    client_body: Duration = 60.0
    drain: Duration = 30.0
    upstream_keepalive: Duration = 4.0

    @model_validator(mode="after")
    def _positive(self) -> Timeouts:
        for name in ("connect", "first_byte", "idle", "client_header", "client_body"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than 0")
        return self


class Limits(Model):
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # Capped at 1 MiB: a larger body is streamed (and aiohttp warns about big byte bodies).
    buffer_body_bytes: int = Field(default=1024 * 1024, ge=0, le=1024 * 1024)
    max_connections_per_upstream: int = Field(default=0, ge=0)


class Retries(Model):
    """Attempts before any byte reached the client; a POST is never sent twice."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    fallback_to_baseline: bool = True


class OutlierDetection(Model):
    """Passive health, after Envoy: eject an endpoint after consecutive failures."""

    consecutive_failures: int = Field(default=5, ge=1)
    base_ejection: Duration = 30.0
    max_ejection: Duration = 300.0
    max_ejection_percent: int = Field(default=50, ge=0, le=100)


class Override(Model):
    """The trusted track override for internal smoke tests.

    A request may pick its track with ``header`` only when it also carries ``secret_header``
    equal to the secret given to the proxy (environment, never this file). Otherwise both
    headers are stripped and ignored.
    """

    header: HeaderName = "x-splitgate-track"
    secret_header: HeaderName = "x-splitgate-internal"


class FeedbackLimits(Model):
    """The public ``POST /v1/feedback``: requests a second per client address, and burst."""

    rate_per_second: float = Field(default=5.0, gt=0)
    burst: int = Field(default=20, ge=1)


class ProxySettings(Model):
    timeouts: Timeouts = Timeouts()
    feedback: FeedbackLimits = FeedbackLimits()
    limits: Limits = Limits()
    retries: Retries = Retries()
    outlier_detection: OutlierDetection = OutlierDetection()
    override: Override = Override()
    decision_log: DecisionLogSettings = DecisionLogSettings()
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list
    )


FLAG_FIELDS = ("attributes", "segments", "feature_flags")
"""Document fields added with feature flags: left out of the serialized form when empty, so
a document without flags reads exactly as before (and older proxies accept it)."""


class RoutingDocument(Model):
    """The routes, tracks, upstreams, weights and salts, and the feature flags with the
    segments and request attributes they use: the part that changes at run time.

    In Redis it is one versioned value (``config.keys.StoredDocument``); in a file it is the
    top level of a ``SplitgateConfig``. Flags are described in ``config.flags``.
    """

    routes: list[Route] = Field(min_length=1)
    attributes: dict[AttributeName, HeaderName] = Field(default_factory=dict)
    """Attribute name → the request header it is read from (default: ``x-`` + name)."""
    segments: dict[Name, Segment] = Field(default_factory=dict)
    feature_flags: dict[Name, Flag] = Field(default_factory=dict)
    """Evaluated in this order: the first flag that releases a request decides."""

    @model_validator(mode="after")
    def _flag_references(self) -> RoutingDocument:
        tracks = {r.name: {t.name for t in r.tracks} for r in self.routes}
        check_references(tracks, self.segments, self.feature_flags, self.attributes)
        return self

    @model_serializer(mode="wrap")
    def _omit_empty_flag_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in FLAG_FIELDS:
                if name in data and not data[name]:
                    del data[name]
        return data

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, value: list[Route]) -> list[Route]:
        names: set[str] = set()
        matches: set[tuple[str | None, str]] = set()
        for route in value:
            if route.name in names:
                raise ValueError(f"route {route.name!r} is listed twice")
            names.add(route.name)
            key = (route.match.host, route.match.path_prefix)
            if key in matches:
                raise ValueError(
                    f"route {route.name!r} has the same match as an earlier route ({key[1]!r})"
                )
            matches.add(key)
        return value

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)


class SplitgateConfig(RoutingDocument):
    """The whole file: the routing document and the data plane's own settings."""

    proxy: ProxySettings = ProxySettings()

    def document(self) -> RoutingDocument:
        return RoutingDocument(
            **{name: getattr(self, name) for name in RoutingDocument.model_fields}
        )
