"""``HOST:PORT`` listen addresses, as both planes take them on the command line."""

from __future__ import annotations


def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:8080``, ``[::1]:8080`` or ``:8080`` (every interface); ``ValueError`` otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)
