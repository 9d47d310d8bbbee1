"""Where Redis is: one URL for a single server, a Sentinel-managed primary or a Cluster.

- ``redis://[:password@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path/redis.sock``
- ``redis+sentinel://[:password@]host1:26379,host2:26379/<service>[/db]``
- ``redis+cluster://[:password@]host:7000[,host2:7001]``

The password before ``@`` is the Redis servers' (``requirepass``/ACL), never the Sentinels'.
splitgate's own query parameters (taken out before redis-py sees the URL):

- ``sentinel_password=…`` (Sentinel URLs): the Sentinels' own ``requirepass``
  (also ``SPLITGATE_REDIS_SENTINEL_PASSWORD``)
- ``wait_replicas=N[/TIMEOUT]`` (not on Cluster): after each write of the routing document
  the control plane waits until N replicas have it, at most TIMEOUT (default 1 s)
  (also ``SPLITGATE_REDIS_WAIT_REPLICAS``)

Parsing is pure; each plane builds its redis-py client from the ``RedisTarget``, with the
numbers below. Everything about the clients that needs no redis-py is here, defined once; the
two factories (``control.redis_client``, ``proxy.redis_client``) only turn it into redis-py
objects, because this package imports no redis and the planes never import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from config.durations import parse_duration

SENTINEL_PASSWORD = "sentinel_password"
WAIT_REPLICAS = "wait_replicas"
MAX_WAIT_S = 1.5
"""Below the clients' 2 s socket timeout: a WAIT that outlasted it would fail a write that
was applied, and the write would be retried."""
DEFAULT_WAIT_S = 1.0

SOCKET_TIMEOUT_S = 2.0
"""Every connection's connect and socket timeout, to the Redis servers and to each Sentinel:
a frozen server or Sentinel costs one timeout, not a stall."""
HEALTH_CHECK_S = 10
"""A pooled connection idle this long is pinged before use (a standalone server's client)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failed command is sent again: ``retries`` times, pausing ``base_s`` × 2^n
    before the n-th (n from 1), at most ``cap_s``. No retries: the caller's loop decides."""

    retries: int
    base_s: float = 0.0
    cap_s: float = 0.0


NO_RETRY = RetryPolicy(0)
"""The proxy's background tasks (their loops reconnect with a backoff of their own), and
every question to a Sentinel (the next Sentinel is asked instead)."""
CONTROL_RETRY = RetryPolicy(2, base_s=0.05, cap_s=0.5)
"""The control plane's commands: after 0.1 s and 0.2 s, enough to replace a pooled connection
to a primary that has just been demoted or killed."""


RedisKind = Literal["standalone", "sentinel", "cluster"]


@dataclass(frozen=True)
class RedisTarget:
    kind: RedisKind
    url: str
    """For standalone: the URL without splitgate's parameters; for cluster: ``redis://`` + the
    first node."""
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    password: str | None = None
    """The Redis servers' password (the ``[:password@]`` part)."""
    sentinel_password: str | None = None
    wait_replicas: int = 0
    """Replicas each document write waits for (``WAIT``); 0: do not wait."""
    wait_timeout_s: float = DEFAULT_WAIT_S


def parse_redis_url(url: str) -> RedisTarget:
    """Raise ``ValueError`` with a readable reason when ``url`` is not one of the forms above."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    ours, rest = _split_query(parts.query)
    wait, wait_s = 0, DEFAULT_WAIT_S
    if WAIT_REPLICAS in ours:
        try:
            wait, wait_s = parse_wait(ours[WAIT_REPLICAS])
        except ValueError as exc:
            raise ValueError(f"{_safe(url)!r}: {WAIT_REPLICAS} {exc}") from None
    if scheme in ("redis", "rediss", "unix"):
        if SENTINEL_PASSWORD in ours:
            raise ValueError(f"{_safe(url)!r}: sentinel_password is for redis+sentinel:// URLs")
        plain = url if not ours else urlunsplit(parts._replace(query=urlencode(rest)))
        return RedisTarget("standalone", plain, wait_replicas=wait, wait_timeout_s=wait_s)
    if scheme not in ("redis+sentinel", "redis+cluster"):
        raise ValueError(
            f"{_safe(url)!r}: a Redis URL starts with redis://, rediss://, unix://, "
            "redis+sentinel:// or redis+cluster://"
        )
    password = unquote(parts.password) if parts.password else None
    hostlist = parts.netloc.rpartition("@")[2]
    nodes = tuple(_node(item, url) for item in hostlist.split(",") if item)
    if not nodes:
        raise ValueError(f"{_safe(url)!r}: no host given")
    if rest:
        names = ", ".join(sorted({name for name, _ in rest}))
        raise ValueError(
            f"{_safe(url)!r}: unknown parameter {names} (known: {SENTINEL_PASSWORD}, {WAIT_REPLICAS})"
        )
    if scheme == "redis+cluster":
        if ours:
            raise ValueError(f"{_safe(url)!r}: a Cluster URL takes no {', '.join(sorted(ours))}")
        host, port = nodes[0]
        return RedisTarget("cluster", f"redis://{host}:{port}", nodes, password=password)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(
            f"{_safe(url)!r}: a Sentinel URL names the service: redis+sentinel://h:26379/mymaster"
        )
    db = path[1] if len(path) > 1 else "0"
    if not db.isdigit():
        raise ValueError(f"{_safe(url)!r}: the database number {db!r} is not a number")
    return RedisTarget(
        "sentinel",
        url,
        nodes,
        service=path[0],
        db=int(db),
        password=password,
        sentinel_password=ours.get(SENTINEL_PASSWORD) or None,
        wait_replicas=wait,
        wait_timeout_s=wait_s,
    )


def parse_wait(value: str) -> tuple[int, float]:
    """``N`` or ``N/TIMEOUT`` (e.g. ``1/500ms``): replicas to wait for and for how long."""
    count, _, timeout = value.strip().partition("/")
    if not (count.isascii() and count.isdigit()) or int(count) > 100:
        raise ValueError(
            f"{value!r}: expected a number of replicas 0-100, then optionally /TIMEOUT"
        )
    seconds = parse_duration(timeout) if timeout else DEFAULT_WAIT_S
    if not 0.001 <= seconds <= MAX_WAIT_S:
        raise ValueError(f"{value!r}: the timeout must be between 1ms and {MAX_WAIT_S:g}s")
    return int(count), seconds


def with_parameter(url: str, name: str, value: str) -> str:
    """``url`` with the query parameter ``name`` set to ``value`` unless the URL already sets
    it (a setting given in the URL wins over one given by an environment variable)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == name for key, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, (name, value)], quote_via=quote)))


def _split_query(query: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in (SENTINEL_PASSWORD, WAIT_REPLICAS):
            ours[name] = value
        else:
            rest.append((name, value))
    return ours, rest


def _safe(url: str) -> str:
    """``url`` without its passwords, for error messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = [
        (name, "***" if name == SENTINEL_PASSWORD else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*/")))


def _node(item: str, url: str) -> tuple[str, int]:
    host, sep, port = item.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{_safe(url)!r}: {item!r} is not host:port")
    return host.strip("[]"), int(port)


def with_settings(url: str, sentinel_password: str | None, wait: str | None) -> str:
    """``url`` with ``SPLITGATE_REDIS_SENTINEL_PASSWORD`` and ``SPLITGATE_REDIS_WAIT_REPLICAS``
    (or their flags) folded in as its query parameters; the URL's own parameters win.

    Raise ``ValueError`` naming the setting when one does not fit."""
    if sentinel_password:
        if urlsplit(url).scheme.lower() != "redis+sentinel":
            raise ValueError(
                "SPLITGATE_REDIS_SENTINEL_PASSWORD: the Redis URL is not a redis+sentinel:// URL"
            )
        url = with_parameter(url, SENTINEL_PASSWORD, sentinel_password)
    if wait:
        try:
            parse_wait(wait)
        except ValueError as exc:
            raise ValueError(f"SPLITGATE_REDIS_WAIT_REPLICAS {exc}") from None
        if urlsplit(url).scheme.lower() == "redis+cluster":
            raise ValueError("SPLITGATE_REDIS_WAIT_REPLICAS: not available with redis+cluster://")
        url = with_parameter(url, WAIT_REPLICAS, wait)
    return url
