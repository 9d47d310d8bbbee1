"""Who a request belongs to, and where that puts it: defined once, for the proxy's hot path
and for every explanation of it (``config.targeting``, ``config.flags``).

- **The sticky key** is the value of the first stickiness source present on the request
  (a header, a cookie, the client's address, or the conversation). ``client_ip`` is the peer
  address, unless the peer is a configured trusted proxy: then it is the right-most
  ``X-Forwarded-For`` entry that is not itself a trusted proxy (the left part of that header
  is whatever the client chose to write). ``conversation`` is its id header
  (``x-conversation-id`` unless named), else a digest of the conversation's opening read from
  the buffered JSON body (``config.conversation``); a caller without such a body passes none,
  and the source is then absent unless the header is there.
- **The bucket**: ``xxh64(salt + ":" + key) mod 10_000``. xxh64 (seed 0) over the UTF-8 bytes
  is portable: any language with an xxhash binding gets the same bucket, so replicas,
  restarts and other implementations agree. Python's ``hash()`` is randomised per process and
  must never be used here. Golden vectors in ``tests/golden/buckets.json`` pin the mapping.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from http.cookies import CookieError, SimpleCookie

from xxhash import xxh64_intdigest

from config.base import HASH_BUCKETS
from config.conversation import conversation_key

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Source = tuple[str, str]
"""A compiled stickiness source: ``("header"|"cookie"|"conversation", name)`` or
``("client_ip", "")``; a conversation's name is its id header."""

CONVERSATION_HEADER = "x-conversation-id"


def compile_sources(sources: Iterable[str]) -> tuple[Source, ...]:
    compiled: list[Source] = []
    for source in sources:
        kind, _, name = source.partition(":")
        if kind == "conversation":
            name = name.lower() or CONVERSATION_HEADER
        compiled.append((kind, name))
    return tuple(compiled)


def reads_body(sources: tuple[Source, ...]) -> bool:
    """Whether a source may need the request body (a ``conversation`` source)."""
    return any(kind == "conversation" for kind, _ in sources)


class ClientAddress:
    """Finds the client's address, believing ``X-Forwarded-For`` only from trusted peers."""

    __slots__ = ("_trusted",)

    def __init__(self, trusted: Iterable[Network]) -> None:
        self._trusted = tuple(trusted)

    def of(self, peer: str | None, forwarded_for: str | None) -> str | None:
        if not self._trusted or peer is None or not forwarded_for or not self._is_trusted(peer):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if not hop:
                continue
            if not self._is_trusted(hop):
                return hop
        return peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)


def sticky_key(
    sources: tuple[Source, ...],
    headers: Mapping[str, str],
    peer: str | None,
    client: ClientAddress,
    body: bytes | None = None,
) -> str | None:
    """The first present stickiness source's value, or None when the request has none.

    ``body`` is the request body when the caller holds it whole (the proxy: buffered, under
    its limit); it is parsed only if a ``conversation`` source is reached without its header.
    """
    for kind, name in sources:
        if kind == "header":
            value = headers.get(name)
            if value:
                return value
        elif kind == "cookie":
            value = cookie_value(headers.get("cookie"), name)
            if value:
                return value
        elif kind == "conversation":
            value = headers.get(name)
            if value:
                return value
            if body:
                value = conversation_key(body)
                body = None  # parsed once: a second conversation source would get the same
                if value:
                    return value
        else:
            address = client.of(peer, headers.get("x-forwarded-for"))
            if address:
                return address
    return None


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or None (also when malformed)."""
    if not header or name not in header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:  # a malformed Cookie header is the client's problem, not a 500
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def salt_prefix(salt: str) -> bytes:
    """The bytes hashed before every key of one salt; computed once per routing table."""
    return salt.encode() + b":"


def bucket(prefix: bytes, key: str) -> int:
    """The bucket in ``[0, 10_000)`` of ``key`` under a salt prefix from ``salt_prefix``."""
    return int(xxh64_intdigest(prefix + key.encode("utf-8", "surrogateescape"))) % HASH_BUCKETS
