"""Reading SSE chunks as they arrive, whatever the chunk boundaries."""

from __future__ import annotations

import json

import pytest

from loadtests.sse import StreamReader


def event(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


FULL = event("Hel") + event("lo") + event(finish="stop") + b"data: [DONE]\n\n"


@pytest.mark.parametrize("size", [1, 3, 7, len(FULL)])
def test_any_chunking_reads_the_same(size: int) -> None:
    reader = StreamReader()
    counts = [reader.feed(FULL[i : i + size]) for i in range(0, len(FULL), size)]
    assert sum(counts) == reader.events == 4
    assert (reader.done, reader.finished, reader.complete) == (True, True, True)
    assert "".join(reader.text) == "Hello"


def test_the_first_chunk_with_a_whole_event_counts_it() -> None:
    reader = StreamReader()
    assert reader.feed(b": comment\n\nda") == 0
    assert reader.feed(b"ta: {}\r\n") == 1


@pytest.mark.parametrize(
    ("stream", "complete"),
    [
        (event("a") + event("b"), False),  # truncated: neither [DONE] nor a finish_reason
        (event("a") + event(finish="length"), True),
        (event("a") + b"data: [DONE]\n\n", True),
        (b"data: not json\n\ndata: [1, 2]\n\n", False),
        (b"", False),
    ],
)
def test_complete_streams(stream: bytes, complete: bool) -> None:
    reader = StreamReader()
    reader.feed(stream)
    assert reader.complete is complete
