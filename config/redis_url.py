"""Where Redis is: one URL for a single server, a Sentinel-managed primary or a Cluster.

- ``redis://[:password@]host:port/db``, ``rediss://…`` (TLS), ``unix:///path/redis.sock``
- ``redis+sentinel://[:password@]host1:26379,host2:26379/<service>[/db]``
- ``redis+cluster://[:password@]host:7000[,host2:7001]``

Parsing is pure; each plane builds its redis-py client from the ``RedisTarget``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class RedisTarget:
    kind: Literal["standalone", "sentinel", "cluster"]
    url: str
    """For standalone: the URL as given; for cluster: ``redis://`` + the first node."""
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """Raise ``ValueError`` with a readable reason when ``url`` is not one of the forms above."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget("standalone", url)
    if scheme not in ("redis+sentinel", "redis+cluster"):
        raise ValueError(
            f"{url!r}: a Redis URL starts with redis://, rediss://, unix://, "
            "redis+sentinel:// or redis+cluster://"
        )
    password = unquote(parts.password) if parts.password else None
    hostlist = parts.netloc.rpartition("@")[2]
    nodes = tuple(_node(item, url) for item in hostlist.split(",") if item)
    if not nodes:
        raise ValueError(f"{url!r}: no host given")
    if scheme == "redis+cluster":
        host, port = nodes[0]
        return RedisTarget("cluster", f"redis://{host}:{port}", nodes, password=password)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(
            f"{url!r}: a Sentinel URL names the service: redis+sentinel://h:26379/mymaster"
        )
    db = path[1] if len(path) > 1 else "0"
    if not db.isdigit():
        raise ValueError(f"{url!r}: the database number {db!r} is not a number")
    return RedisTarget("sentinel", url, nodes, service=path[0], db=int(db), password=password)


def _node(item: str, url: str) -> tuple[str, int]:
    host, sep, port = item.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{url!r}: {item!r} is not host:port")
    return host.strip("[]"), int(port)
