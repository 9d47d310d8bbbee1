"""Redis replies as the planes use them: strings, and streams as (id, fields) pairs.

Every client of either plane decodes responses (``decode_responses=True``), but redis-py's
annotations cannot know that and say ``bytes | str``; these helpers say ``str`` honestly
(a ``bytes`` reply is decoded, never cast). Nothing here imports redis: both planes share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload


@overload
def text(reply: bytes | str) -> str: ...
@overload
def text(reply: None) -> None: ...
def text(reply: bytes | str | None) -> str | None:
    """A string reply as ``str``: every client here decodes (``decode_responses=True``), but
    redis-py's annotations cannot know that and say ``bytes | str``."""
    return reply.decode() if isinstance(reply, bytes) else reply


StreamReply = Iterable[tuple[bytes | str | None, Mapping[bytes | str, bytes | str] | None]]
"""A stream range as redis-py annotates it (``XRANGE``, ``XREVRANGE``)."""


def entries(reply: StreamReply | None) -> list[tuple[str, dict[str, str]]]:
    """A stream range as (id, fields) strings, in order. redis-py's annotations allow an
    entry without id or fields (one deleted meanwhile, in some replies): left out."""
    return [
        (text(entry_id), {text(k): text(v) for k, v in fields.items()})
        for entry_id, fields in reply or ()
        if entry_id is not None and fields is not None
    ]


def stream_reads(
    reply: Iterable[Sequence[Any]] | Mapping[bytes | str, Any] | None,
) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """An ``XREAD`` reply (RESP2's list of [stream, entries], or RESP3's map) as (stream,
    entries) strings."""
    pairs: list[tuple[Any, Any]]
    if isinstance(reply, Mapping):
        pairs = list(reply.items())
    else:
        pairs = [(item[0], item[1]) for item in reply or ()]
    return [(text(stream), entries(found)) for stream, found in pairs]
