"""The routing table: an immutable snapshot compiled from the routing document.

Requests read ``TableRef.current`` once and use that object to the end; a new document is
compiled into a new table and swapped in by one assignment, so a request never sees half of
an update. Everything a request needs is precomputed here: bucket bounds, salt bytes and the
response header values of each track.

Bucket layout of a route: the candidate (first listed non-baseline track) owns ``[0, w)``, the
other non-baseline tracks follow in listed order, and the baseline owns the top of the range.
Raising the candidate's weight while lowering the baseline's moves only baseline users onto
the candidate, and lowering it moves the most recently added users back first.

Feature flags (``config.flags``) compile into ``CompiledFlags``: every distinct condition of
the route's enabled flags gets one bit; per attribute, a dict from each value named by an
``in``/``equals`` test to the bits that value satisfies (prefix, number and version tests
run on the value once it is read). A request reads each attribute header once, ORs its bits
together, and a flag's audience holds when some condition set's bits are all present, one
integer test per set. A gate of one bit per set lets most requests skip the flags after
reading the headers, and override lists are one dict lookup; a route without flags pays one
attribute check. ``explain`` in ``config.targeting`` is the reference this must agree with.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from config.base import USER_ID
from config.feedback import track_payload
from config.flags import (
    NUMBER_OPERATORS,
    SEMVER_OPERATORS,
    Compare,
    Condition,
    default_header,
    flag_salt,
    parse_number,
    parse_semver,
    threshold,
)
from config.schema import HASH_BUCKETS, Route, RoutingDocument
from config.stickiness import Source, bucket, compile_sources, reads_body, salt_prefix
from config.targeting import flags_of
from proxy.endpoints import Balancer, EndpointPool
from proxy.shadow_route import CompiledShadow, compile_shadow
from proxy.stats import StatsRegistry, TrackStats

Reader = tuple[str | None, Callable[[str], int]]
"""An attribute's header (None: the sticky key) and the condition bits a value of it sets."""


@dataclass(frozen=True, slots=True)
class CompiledTrack:
    name: str
    version: str
    balancer: Balancer
    stats: TrackStats
    feedback_payload: str
    """The route/track/version part of the signed request ids (``config.feedback``)."""


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    name: str
    track: CompiledTrack
    stats: TrackStats
    """Counts of the requests this flag released (``TrackStats.flag`` is the name)."""
    sets: tuple[int, ...]
    """The condition bits each condition set needs (0: everyone); empty: no audience."""
    salt: bytes
    threshold: int
    """Buckets ``[0, threshold)`` of the flag's own hash are released."""


@dataclass(frozen=True, slots=True)
class CompiledFlags:
    """The enabled flags of one route, in document order, ready for ``decide``."""

    readers: tuple[Reader, ...]
    flags: tuple[CompiledFlag, ...]
    overrides: dict[str, tuple[bool | None, ...]]
    """User id → per flag: True (``enabled_for``), False (``disabled_for``, which wins) or
    None. Only users named in some override list are here."""
    gate: int | None
    """One bit of every condition set (None: some set is everyone): a request with none of
    them matches no set, and skips the flags."""
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def decide(self, get: Callable[[str], str | None], key: str | None) -> CompiledFlag | None:
        """The first flag that releases this request, if any (``get`` reads a header)."""
        have = 0
        for header, read in self.readers:
            value = key if header is None else get(header)
            if value:
                have |= read(value)
        if key is not None and self.overrides:
            states = self.overrides.get(key)
            if states is not None:
                return self._decide_overridden(have, key, states)
        gate = self.gate
        if gate is not None and not have & gate:
            return None  # the common case: no condition set can hold
        for flag in self.flags:
            for need in flag.sets:
                if have & need == need:
                    break
            else:
                continue
            if self._in_rollout(flag, key):
                return flag
        return None

    def _decide_overridden(
        self, have: int, key: str, states: tuple[bool | None, ...]
    ) -> CompiledFlag | None:
        for flag, state in zip(self.flags, states, strict=True):
            if state is not None:
                if state:
                    return flag
                continue
            for need in flag.sets:
                if have & need == need:
                    break
            else:
                continue
            if self._in_rollout(flag, key):
                return flag
        return None

    def _in_rollout(self, flag: CompiledFlag, key: str | None) -> bool:
        share = flag.threshold
        if share >= HASH_BUCKETS:
            return True
        value = self.rng.randrange(HASH_BUCKETS) if key is None else bucket(flag.salt, key)
        return value < share


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    name: str
    path_prefix: str
    host: str | None
    stickiness: tuple[Source, ...]
    salt: bytes
    bounds: tuple[int, ...]
    """Exclusive upper bucket bound of each entry of ``ordered``."""
    ordered: tuple[CompiledTrack, ...]
    """Tracks in bucket order: candidate first, baseline last; zero-weight tracks left out."""
    tracks: dict[str, CompiledTrack]
    baseline: CompiledTrack
    weights: dict[str, float]
    assigned_at_build: dict[str, int]
    """Each track's assigned count when this table was built: the sample-ratio check counts
    only what this table's weights decided."""
    flags: CompiledFlags | None = None
    """None when no enabled flag of the document names this route."""
    reads_body: bool = False
    """A ``conversation`` source may take the sticky key from the buffered body."""
    shadow: CompiledShadow | None = None
    """Where a share of the route's POST requests is mirrored (``proxy.shadow``)."""
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def bucket_of(self, key: str) -> int:
        return bucket(self.salt, key)

    def track_for_bucket(self, value: int) -> CompiledTrack:
        return self.ordered[bisect_right(self.bounds, value)]

    def pick(self, key: str | None) -> CompiledTrack:
        """The track for a sticky ``key``; no key gets a random track, drawn by weight."""
        value = self._rng.randrange(HASH_BUCKETS) if key is None else bucket(self.salt, key)
        return self.ordered[bisect_right(self.bounds, value)]


@dataclass(frozen=True, slots=True)
class RoutingTable:
    generation: int
    routes: tuple[CompiledRoute, ...]
    """Longest path prefix first; a route with a host comes before one without."""
    by_host: bool = False
    """Some route matches on the host: only then is a request's host looked at."""

    def match(self, path: str, host: str | None) -> CompiledRoute | None:
        """The route for a request path and ``Host`` header value (port and case ignored)."""
        hostname: str | None = None
        for route in self.routes:
            if not path.startswith(route.path_prefix):
                continue
            if route.host is None:
                return route
            if hostname is None:
                hostname = _hostname(host)
            if route.host == hostname:
                return route
        return None

    @classmethod
    def build(
        cls,
        document: RoutingDocument,
        pool: EndpointPool,
        generation: int = 0,
        stats: StatsRegistry | None = None,
    ) -> RoutingTable:
        """Compile a validated document; generation 0 means "from the config file"."""
        registry = stats if stats is not None else StatsRegistry()
        compiled = [_compile_route(route, document, pool, registry) for route in document.routes]
        compiled.sort(key=lambda r: (r.host is None, -len(r.path_prefix)))
        return cls(
            generation=generation,
            routes=tuple(compiled),
            by_host=any(r.host is not None for r in compiled),
        )


class TableRef:
    """The one mutable cell: which table is current. Replaced whole, never edited."""

    __slots__ = ("current",)

    def __init__(self, table: RoutingTable) -> None:
        self.current = table


def _hostname(host: str | None) -> str:
    if not host:
        return ""
    if host.startswith("["):
        return host[: host.find("]") + 1].lower()
    name, _, port = host.rpartition(":")
    return (name if name and port.isdigit() else host).lower()


def bucket_order(route: Route) -> list[str]:
    """Track names in bucket order: candidate, other non-baseline tracks, baseline."""
    baseline = route.baseline_name()
    return [t.name for t in route.tracks if t.name != baseline] + [baseline]


def _compile_route(
    route: Route, document: RoutingDocument, pool: EndpointPool, stats: StatsRegistry
) -> CompiledRoute:
    tracks = {
        t.name: CompiledTrack(
            name=t.name,
            version=t.version,
            balancer=Balancer([pool.get(url) for url in t.upstreams], route.balance),
            stats=stats.get(route.name, t.name, t.version),
            feedback_payload=track_payload(route.name, t.name, t.version),
        )
        for t in route.tracks
    }
    layout = route.bucket_layout()
    stickiness = compile_sources(route.stickiness)
    return CompiledRoute(
        name=route.name,
        path_prefix=route.match.path_prefix,
        host=route.match.host,
        stickiness=stickiness,
        salt=salt_prefix(route.hash_salt()),
        bounds=tuple(upper for _, upper in layout),
        ordered=tuple(tracks[name] for name, _ in layout),
        tracks=tracks,
        baseline=tracks[route.baseline_name()],
        weights={t.name: t.weight for t in route.tracks},
        assigned_at_build={name: t.stats.assigned for name, t in tracks.items()},
        flags=_compile_flags(route.name, document, tracks, stats),
        reads_body=reads_body(stickiness),
        shadow=compile_shadow(route, {n: t.balancer for n, t in tracks.items()}, stats),
    )


def _compile_flags(
    route: str, document: RoutingDocument, tracks: dict[str, CompiledTrack], stats: StatsRegistry
) -> CompiledFlags | None:
    active = [
        (name, flag)
        for name, flag in flags_of(document, route)
        if flag.enabled and (threshold(flag) > 0 or flag.override.enabled_for)
    ]
    if not active:
        return None
    bits: dict[object, int] = {}
    tests: dict[str, list[tuple[int, Condition]]] = {}
    compiled: list[CompiledFlag] = []
    overrides: dict[str, list[bool | None]] = {}
    gate: int | None = 0
    for index, (name, flag) in enumerate(active):
        sets: list[int] = []
        # At 0 % only the override lists release anyone: no audience to test.
        for _, conditions in flag.condition_sets(document.segments) if threshold(flag) else ():
            need = 0
            for condition in conditions:
                key = condition.key()
                if key not in bits:
                    bits[key] = 1 << len(bits)
                    tests.setdefault(condition.attribute, []).append((bits[key], condition))
                need |= bits[key]
            sets.append(need)
            # The gate takes the set's most selective test: an `in` or `equals` if it has one.
            chosen = min(conditions, key=lambda c: c.operator not in ("in", "equals"), default=None)
            gate = None if gate is None or chosen is None else gate | bits[chosen.key()]
        for user in flag.override.enabled_for:
            overrides.setdefault(user, [None] * len(active))[index] = True
        for user in flag.override.disabled_for:  # deny before allow
            overrides.setdefault(user, [None] * len(active))[index] = False
        track = tracks[flag.track]
        compiled.append(
            CompiledFlag(
                name=name,
                track=track,
                stats=stats.get(route, track.name, track.version, name),
                sets=tuple(sets),
                salt=salt_prefix(flag_salt(name, flag)),
                threshold=threshold(flag),
            )
        )
    headers = {a: document.attributes.get(a, default_header(a)) for a in tests}
    return CompiledFlags(
        readers=tuple(
            (None if a == USER_ID else headers[a], _reader(found)) for a, found in tests.items()
        ),
        flags=tuple(compiled),
        overrides={user: tuple(states) for user, states in overrides.items()},
        gate=gate,
    )


def _reader(tests: list[tuple[int, Condition]]) -> Callable[[str], int]:
    """value → the bits of ``tests`` (all on one attribute) that the value satisfies."""
    exact: dict[str, int] = {}
    other = 0
    prefixes: list[tuple[int, tuple[str, ...]]] = []
    numbers: list[tuple[int, Compare, object]] = []
    versions: list[tuple[int, Compare, object]] = []
    discrete: list[tuple[int, frozenset[str], bool]] = []
    for bit, c in tests:
        op = c.operator
        if op in ("in", "not_in"):
            assert c.values is not None
            discrete.append((bit, frozenset(c.values), op == "in"))
        elif op in ("equals", "not_equals"):
            assert isinstance(c.value, str)
            discrete.append((bit, frozenset((c.value,)), op == "equals"))
        elif op == "prefix":
            assert c.values is not None
            prefixes.append((bit, tuple(c.values)))
        elif op in NUMBER_OPERATORS:
            numbers.append((bit, NUMBER_OPERATORS[op], c.value))
        else:
            assert isinstance(c.value, str)
            versions.append((bit, SEMVER_OPERATORS[op], parse_semver(c.value)))
    for bit, _, positive in discrete:
        if not positive:
            other |= bit
    for value in {v for _, values, _ in discrete for v in values}:
        exact[value] = 0
        for bit, values, positive in discrete:
            if (value in values) == positive:
                exact[value] |= bit
    lookup = exact.get
    if not (prefixes or numbers or versions):
        return lambda value: lookup(value, other)

    def read(value: str) -> int:
        found = lookup(value, other)
        for bit, starts in prefixes:
            if value.startswith(starts):
                found |= bit
        if numbers and (number := parse_number(value)) is not None:
            for bit, compare, operand in numbers:
                if compare(number, operand):
                    found |= bit
        if versions and (version := parse_semver(value)) is not None:
            for bit, compare, operand in versions:
                if compare(version, operand):
                    found |= bit
        return found

    return read
