"""Which user a request belongs to: the sticky key, and the client's address.

The key is the value of the first stickiness source present on the request. ``client_ip`` is
the peer address, unless the peer is a configured trusted proxy: then it is the right-most
``X-Forwarded-For`` entry that is not itself a trusted proxy (the left part of that header is
whatever the client chose to write).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from http.cookies import CookieError, SimpleCookie

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Source = tuple[str, str]
"""A compiled stickiness source: ``("header"|"cookie", name)`` or ``("client_ip", "")``."""


def compile_sources(sources: Iterable[str]) -> tuple[Source, ...]:
    compiled: list[Source] = []
    for source in sources:
        kind, _, name = source.partition(":")
        compiled.append((kind, name))
    return tuple(compiled)


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
) -> str | None:
    """The first present stickiness source's value, or None when the request has none."""
    for kind, name in sources:
        if kind == "header":
            value = headers.get(name)
            if value:
                return value
        elif kind == "cookie":
            value = _cookie(headers.get("cookie"), name)
            if value:
                return value
        else:
            address = client.of(peer, headers.get("x-forwarded-for"))
            if address:
                return address
    return None


def _cookie(header: str | None, name: str) -> str | None:
    if not header or name not in header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:  # a malformed Cookie header is the client's problem, not a 500
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None
