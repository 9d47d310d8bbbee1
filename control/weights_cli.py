"""``splitgate weights get|set``: read or set a route's weights through the admin API.

``set ... --wait SECONDS`` then waits until every live proxy replica routes by the change
(exit 1 if not in time). Admin URL, token and exit statuses: ``control.cli``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from config import jsonsafe
from control.admin_client import AdminApi

PROG = "splitgate weights"
HELP = "read or set a route's weights through the admin API"
DESCRIPTION = "Read or set a route's weights."


def parse_weights(pairs: Sequence[str]) -> dict[str, float]:
    weights = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{pair!r}: expected TRACK=PERCENT, e.g. canary=25")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"{pair!r}: {value!r} is not a number") from None
    return weights


def show(
    route: dict[str, Any], generation: int, replicas: Mapping[str, Any], digest: str | None = None
) -> str:
    """The route's tracks, and how many replicas do not route by this document yet: behind
    it, or at its generation number with other content (a write lost by a Redis failover)."""
    lines = [f"route {route['name']} at generation {generation}"]
    for track in route["tracks"]:
        lines.append(
            f"  {track['name']:<16} {track['weight']:>7g} %  {track['version']}  {', '.join(track['upstreams'])}"
        )
    if replicas:
        behind = [
            name
            for name, ack in replicas.items()
            if ack["generation"] < generation
            or (
                ack["generation"] == generation
                and digest
                and ack.get("digest") not in ("", None, digest)
            )
        ]
        lines.append(
            f"replicas: {len(replicas)} live, {len(behind)} behind"
            + (f" ({', '.join(behind)})" if behind else "")
        )
    else:
        lines.append("replicas: none reporting")
    return "\n".join(lines)


def build(
    p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """``get`` and ``set`` under ``p``; each takes the shared options too (``parents``)."""
    sub = p.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", parents=parents, help="show a route's tracks and weights")
    get.add_argument("route")
    put = sub.add_parser(
        "set",
        parents=parents,
        help="set weights: splitgate weights set chat stable=75 canary=25",
    )
    put.add_argument("route")
    put.add_argument("weights", nargs="+", metavar="TRACK=PERCENT")
    put.add_argument("--reason", default="", help="recorded in the audit log")
    put.add_argument(
        "--if-match", metavar="GENERATION", help="refuse (412) if the document moved on"
    )
    put.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="then wait until every live proxy replica routes by the change (exit 1 if not in time)",
    )


def run(api: AdminApi, args: argparse.Namespace) -> int:
    path = f"/v1/routes/{args.route}"
    if args.command == "get":
        answer = api.call("GET", path)
    else:
        headers = {"If-Match": args.if_match} if args.if_match else {}
        body = {"weights": parse_weights(args.weights), "reason": args.reason}
        api.call("PUT", f"{path}/weights", body, headers=headers)
        answer = _converged(api, path, args.wait or 0)
        if args.wait and not answer["converged"]:
            print(_shown(answer))
            print(
                f"{PROG}: not every replica applied generation {answer['generation']} within {args.wait:g} s",
                file=sys.stderr,
            )
            return 1
    print(jsonsafe.dumps(answer, indent=2) if args.json else _shown(answer))
    return 0


def _converged(api: AdminApi, path: str, wait_s: float) -> Any:
    """The route, read again until every live replica applies it or ``wait_s`` is over."""
    answer = api.call("GET", path)
    deadline = time.monotonic() + wait_s
    while wait_s and not answer["converged"] and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = api.call("GET", path)
    return answer


def _shown(answer: Mapping[str, Any]) -> str:
    return show(answer["route"], answer["generation"], answer["replicas"], answer.get("digest"))
