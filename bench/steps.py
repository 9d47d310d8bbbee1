"""Cost of each step of splitgate's own per-request work, in isolation, on this machine.

    python bench/steps.py [--quick] [--json PATH]

Times, in-process (no sockets, no network), what ``Forwarder.handle`` itself does for one
typical request (an OpenAI SDK chat completion) on ``tests/conftest.py``'s two-track route:
routing, the flag gate, the header filters both ways, the request id, the watchdog, the
``_Exchange``, the stats, the response stamps; and, as context, aiohttp's StreamResponse.
Each step is one small function called N times in a loop, ``timeit``-style (N calibrated to
about 50 ms a run, 10 ms with ``--quick``, and bounded; gc off while timed; after warm-up),
on uvloop inside a coroutine as in the proxy. The figure is the median of 7 runs (3 with
``--quick``; the steps take turns run by run) in µs per call, less the loop's own cost per
call (a no-op, the first row).
Totals: a non-streaming JSON answer on a route without flags (A), and an SSE stream on a
route with one flag the request does not meet (B). ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from itertools import count, repeat
from typing import Any

import uvloop
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from config.feedback import Signer
from config.schema import SplitgateConfig
from config.stickiness import ClientAddress, sticky_key
from proxy.answers import stamp as _stamp
from proxy.endpoints import EndpointPool
from proxy.exchange import Exchange as _Exchange
from proxy.headers import RequestHeaderFilter, response_headers
from proxy.stats import StatsRegistry, read_tail
from proxy.table import RoutingTable
from proxy.watchdog import Watchdog

Call = Callable[[Any], object]
"""One step, called with None or with a fresh object of its own (see ``Step``)."""
Step = tuple[str, str, Call, Callable[[], object] | None]
"""(step, totals it counts in: "AB", "A", "B", "" for none; call, maker of its fresh object)."""
MOST, BATCH = 2_000_000, 1000  # most calls per run; calls per timed batch

PATH = "/v1/chat/completions"
HOST = "api.splitgate.internal:8080"
PEER = "10.0.3.17"
REQUEST = [  # what the OpenAI Python SDK (httpx) sends for chat.completions.create
    ("Host", HOST),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
    ("Accept", "application/json"),
    ("Content-Type", "application/json"),
    ("User-Agent", "OpenAI/Python 1.54.4"),
    ("X-Stainless-Lang", "python"),
    ("X-Stainless-Package-Version", "1.54.4"),
    ("x-stainless-retry-count", "0"),
    ("Authorization", "Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"),
    ("x-user-id", "user-48213"),
    ("Content-Length", "187"),
]
UPSTREAM = [  # an OpenAI-style non-streaming answer's headers
    ("Date", "Tue, 12 Nov 2024 10:21:07 GMT"),
    ("Content-Type", "application/json"),
    ("Content-Length", "812"),
    ("Connection", "keep-alive"),
    ("openai-processing-ms", "742"),
    ("openai-version", "2020-10-01"),
    ("x-request-id", "req_8f2c1d0e6b7a4c39a1e5d2f0b3c4a5d6"),
    ("x-ratelimit-remaining-requests", "9999"),
]
_USAGE = b'"usage":{"prompt_tokens":52,"completion_tokens":118,"total_tokens":170}'
JSON_BODY = (
    b'{"id":"chatcmpl-AS8m3xKfZ2d1pQ","object":"chat.completion","created":1731406867,'
    b'"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"'
    + b"A canary release sends a small share of traffic to the new version. " * 6
    + b'","refusal":null},"logprobs":null,"finish_reason":"stop"}],'
    + _USAGE
    + b',"system_fingerprint":"fp_0ba0d124f1"}'
)
_CHUNK = b'data: {"id":"chatcmpl-AS8m3xKfZ2d1pQ","object":"chat.completion.chunk","created":1731406867,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":'
SSE_PREVIOUS = (  # the last two chunks the relay kept: ``previous + last``
    _CHUNK
    + b'[{"index":0,"delta":{"content":" version."},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    + _CHUNK
    + b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n'
)
SSE_LAST = _CHUNK + b"[]," + _USAGE + b"}\n\ndata: [DONE]\n\n"


def config(flag: bool) -> SplitgateConfig:
    """``tests/conftest.py``'s ``two_track_config`` (90/10), with one feature flag if asked."""
    tracks = [
        {"name": name, "version": version, "upstreams": [url], "weight": weight}
        for name, version, url, weight in (
            ("stable", "v1.0.0", "http://10.0.0.1:8000", 90),
            ("canary", "v1.1.0", "http://10.0.0.2:8000", 10),
        )
    ]
    route = {"name": "chat", "match": {"path_prefix": "/"}, "tracks": tracks}
    route["stickiness"] = ["header:x-user-id", "client_ip"]
    flags = {  # the request carries no x-user-segment: the flag's gate turns it away
        "beta-canary": {
            "route": "chat",
            "track": "canary",
            "rollout_percentage": 50,
            "conditions": [{"type": "user_segment", "values": ["beta", "qa"]}],
        }
    }
    document = {"routes": [route], "feature_flags": flags if flag else {}}
    return SplitgateConfig.model_validate(document)


def steps() -> list[Step]:
    """The fixtures, built as ``proxy.app`` and ``Forwarder`` do, and the steps (needs a
    running loop). Each step's calls are here and nowhere else."""
    plain = config(flag=False)
    pool = EndpointPool(plain.proxy.outlier_detection)
    table = RoutingTable.build(plain, pool, stats=StatsRegistry())
    flagged = RoutingTable.build(config(flag=True), pool, stats=StatsRegistry()).routes[0]
    route = table.routes[0]
    assert route.flags is None and flagged.flags is not None
    headers = CIMultiDictProxy(CIMultiDict(REQUEST))
    answer = CIMultiDictProxy(CIMultiDict(UPSTREAM))
    client = ClientAddress(plain.proxy.trusted_proxies)
    key = sticky_key(route.stickiness, headers, PEER, client)
    track = route.pick(key)
    override = plain.proxy.override
    filt = RequestHeaderFilter((override.header, override.secret_header))
    secret, prefix, ids = os.urandom(32), os.urandom(6).hex(), count(1)
    nonce = f"{prefix}{next(ids):010x}"
    signer = Signer(secret)  # as Forwarder: the key's HMAC state prepared once
    request_id = signer(nonce, track.feedback_payload)
    loop, task, timeouts = asyncio.get_running_loop(), asyncio.current_task(), plain.proxy.timeouts
    assert task is not None
    sources = route.stickiness
    pairs = response_headers(answer.items(), answer.get("connection"))

    def watchdog(_: None) -> None:
        started = loop.time()  # Forwarder.handle's `started`
        dog = Watchdog(loop, task, started + timeouts.client_body, "client_body")
        dog.set(started + timeouts.first_byte, "first_byte")  # later: no re-arm
        dog.stop()

    def record(_: None) -> None:
        track.stats.assigned += 1  # as Forwarder.handle
        track.stats.record(912.4, 231.7, None)  # as _record

    def response() -> web.StreamResponse:
        return web.StreamResponse(status=200, reason="OK", headers=pairs)

    return [
        step("route: `table.match`", "AB", lambda _: table.match(PATH, HOST)),
        step("route: `sticky_key`", "AB", lambda _: sticky_key(sources, headers, PEER, client)),
        step("route: `route.pick`", "AB", lambda _: route.pick(key)),
        step(
            "flags: none on the route (`route.flags is None`)",
            "A",
            lambda _: None if route.flags is None else route.flags.decide(headers.get, key),
        ),
        step(
            "flags: `decide`, one flag, not met",
            "B",
            lambda _: None if flagged.flags is None else flagged.flags.decide(headers.get, key),
        ),
        step(
            "headers: `upstream_headers` (12 request headers)",
            "AB",
            lambda _: filt.upstream_headers(headers, headers.items(), PEER, request_id, None),
        ),
        step(
            "headers: `response_headers` (8 upstream headers)",
            "AB",
            lambda _: response_headers(answer.items(), answer.get("connection")),
        ),
        step("request id: nonce formatting", "AB", lambda _: f"{prefix}{next(ids):010x}"),
        step("request id: `Signer`", "AB", lambda _: signer(nonce, track.feedback_payload)),
        step("watchdog: `loop.time()` + create + `set` + `stop`", "AB", watchdog),
        step(
            "exchange: `_Exchange(...)`",
            "AB",
            lambda _: _Exchange(request_id, nonce, False, track, None, 0, 1234.5),
        ),
        step("stats: `assigned += 1` + `record`", "AB", record),
        step(
            f"stats: `read_tail`, JSON body in one chunk ({len(JSON_BODY)} B)",
            "A",
            lambda _: read_tail(b"" + JSON_BODY, False),
        ),
        step(
            f"stats: `read_tail`, SSE, last two chunks ({len(SSE_PREVIOUS + SSE_LAST)} B)",
            "B",
            lambda _: read_tail(SSE_PREVIOUS + SSE_LAST, True),
        ),
        step(
            "stamp: `_stamp` (4 headers on a fresh response)",
            "AB",
            lambda fresh: _stamp(fresh, request_id, track, 7),
            response,
        ),
        step("context, aiohttp: `web.StreamResponse(...)`, 8 headers", "", lambda _: response()),
    ]


def step(name: str, totals: str, call: Call, fresh: Callable[[], object] | None = None) -> Step:
    return name, totals, call, fresh


def timed(call: Call, fresh: Callable[[], object] | None, n: int) -> int:
    """ns for n calls, timed in batches of ``BATCH`` (fresh objects made untimed before each
    batch, so they are still in the CPU cache, as a response just made is)."""
    enabled = gc.isenabled()
    gc.disable()
    spent = 0
    try:
        for done in range(0, n, BATCH):
            size = min(BATCH, n - done)
            args = repeat(None, size) if fresh is None else [fresh() for _ in range(size)]
            started = time.perf_counter_ns()
            for arg in args:
                call(arg)
            spent += time.perf_counter_ns() - started
    finally:
        if enabled:
            gc.enable()
    return spent


def calibrate(call: Call, fresh: Callable[[], object] | None, target_ns: int) -> int:
    """N for a run of about ``target_ns``; the calibration runs and one of N warm up."""
    n, spent = 1, timed(call, fresh, 1)
    for _ in range(7):  # bounded: N grows at most 10**7-fold while calibrating
        if spent >= target_ns // 10 or n >= MOST:
            break
        n = min(MOST, n * 10)
        spent = timed(call, fresh, n)
    n = max(1, min(MOST, n * target_ns // max(spent, 1)))
    timed(call, fresh, n)
    return n


async def bench(runs: int, target_ns: int) -> list[tuple[str, str, float, int]]:
    """(step, totals, µs per call less the loop's own, N). The steps' runs take turns, so a busy
    spell of the machine spoils one run of several steps, which the median leaves out."""
    table = [step("(the loop's own cost per call, taken off the others)", "", lambda _: None)]
    table += steps()
    sizes = [calibrate(call, fresh, target_ns) for _, _, call, fresh in table]
    times: list[list[int]] = [[] for _ in table]
    for _ in range(runs):
        for (_, _, call, fresh), n, spent in zip(table, sizes, times, strict=True):
            await asyncio.sleep(0)  # the loop runs between runs (timer clean-up), as in service
            spent.append(timed(call, fresh, n))
    per_call = [statistics.median(t) / n for t, n in zip(times, sizes, strict=True)]
    rows = [(table[0][0], "", per_call[0] / 1000.0, sizes[0])]
    for (name, totals, _, _), ns, n in zip(table[1:], per_call[1:], sizes[1:], strict=True):
        rows.append((name, totals, max(0.0, ns - per_call[0]) / 1000.0, n))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 runs of about 10 ms per step")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args()
    runs, target_ns = (3, 10_000_000) if args.quick else (7, 50_000_000)
    rows = uvloop.run(bench(runs, target_ns))
    totals = {"A": "JSON answer, route without flags", "B": "SSE stream, one flag not met"}
    sums = {t: sum(us for _, counts, us, _ in rows if t in counts) for t in totals}
    print(f"| step | µs per call | in total | N per run ({runs} runs, median) |")
    print("|---|---:|:---:|---:|")
    for name, counts, us, n in rows:
        print(f"| {name} | {us:.3f} | {counts or '—'} | {n} |")
    for t, label in totals.items():
        print(f"| **total of splitgate's own steps, {t}: {label}** | **{sums[t]:.2f}** | | |")
    print(f"\nPython {platform.python_version()}, uvloop, {os.cpu_count()} CPUs, gc off.")
    if args.json:
        figures: dict[str, Any] = {
            "unit": "us_per_call",
            "runs": runs,
            "python": platform.python_version(),
            "steps": [{"step": s, "us": us, "totals": list(c), "n": n} for s, c, us, n in rows],
            "totals": {f"{t}: {label}": sums[t] for t, label in totals.items()},
        }
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(figures, allow_nan=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
