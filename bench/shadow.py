"""Shadow traffic's costs: the ``splitgate-shadow`` contender's routing file, and what building
one pair costs the flusher's loop.

    SPLITGATE_BENCH_CONTENDERS="splitgate-file splitgate-shadow" bench/run.sh   # end to end
    python bench/shadow.py --pair-cost        # µs to build one pair (a JSON answer, a stream)

The contender is the harness's blue/green route with a shadow mirroring ``--percent`` of its
POST requests to green, in the background.

``splitgate-file`` is the same route without the shadow (``bench/flags.py --flags 0``): the
difference in CPU per request between the two is what the copies cost (each copy is a
request the proxy sends and reads to its end, and a pair built in the background), and the
difference in added TTFB is what mirroring costs the requests users see. The copies' limit
in flight is raised so that the share the harness measures is the share mirrored.
"""

from __future__ import annotations

import argparse
import json
import time

from flags import harness_route  # bench/flags.py, beside this script

from config.shadow import Shadow
from proxy.endpoints import Balancer, Endpoint
from proxy.shadow import Side, Ticket
from proxy.shadow_pairs import build
from proxy.shadow_route import CompiledShadow
from proxy.stats import TrackStats


def write_config(path: str, blue: str, green: str, green_pct: float, percent: float) -> None:
    route = harness_route(blue, green, green_pct)
    route["shadow"] = {"track": "green", "percent": percent, "max_in_flight": 10_000}
    document = {"routes": [route]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f)  # JSON is YAML


def _side(body: bytes, sse: bool) -> Side:
    side = Side("t", "v")
    side.status, side.sse, side.body = 200, sse, [body]
    side.latency_ms = side.ttfb_ms = 1.0
    return side


def pair_cost(store_text: bool, repeat: int = 2000) -> dict[str, float]:
    """µs per pair built, for a 300-token chat answer as JSON and as a stream of 300 events."""
    words = [f"word{i}" for i in range(300)]
    whole = json.dumps(
        {"choices": [{"message": {"content": " ".join(words)}, "finish_reason": "stop"}]}
    ).encode()
    events = [{"choices": [{"delta": {"content": w + " "}, "finish_reason": None}]} for w in words]
    stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode() + b"data: [DONE]\n\n"
    route = CompiledShadow(
        "chat",
        "green",
        "2",
        Balancer([Endpoint("http://127.0.0.1:1")], "round_robin"),
        TrackStats("chat", "green", "2", mode="shadow"),
        1000.0,
        Shadow(track="green", percent=10, store_text=store_text),
    )
    out = {}
    for name, body, sse in (("json", whole, False), ("stream", stream, True)):
        ticket = Ticket(route, "nonce", "request-id")
        ticket.primary, ticket.shadow = _side(body, sse), _side(body, sse)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeat):
                build(ticket).model_dump_json()
            best = min(best, (time.perf_counter() - started) / repeat * 1e6)
        out[name] = best
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write-config", metavar="PATH")
    p.add_argument("--pair-cost", action="store_true", help="time building one pair")
    p.add_argument("--blue", default="http://127.0.0.1:1")
    p.add_argument("--green", default="http://127.0.0.1:2")
    p.add_argument("--green-pct", type=float, default=10)
    p.add_argument("--percent", type=float, default=10, help="share of requests mirrored")
    args = p.parse_args()
    if args.pair_cost:
        for store_text in (False, True):
            cost = pair_cost(store_text)
            print(
                f"store_text={store_text}: {cost['json']:.1f} µs per pair of JSON answers, "
                f"{cost['stream']:.1f} µs per pair of 300-event streams"
            )
    if args.write_config:
        write_config(args.write_config, args.blue, args.green, args.green_pct, args.percent)
    elif not args.pair_cost:
        p.error("give --write-config PATH or --pair-cost")


if __name__ == "__main__":
    main()
