"""``splitgate shadow``: a route's mirroring and its pairs (``config.shadow``) through the admin
API (``PUT``/``DELETE /v1/routes/{route}/shadow``, ``GET /v1/routes/{route}/shadow/pairs``).

``set ROUTE --track T --percent P [limits]`` mirrors the route, ``off ROUTE`` stops it.

``export ROUTE [--limit N]`` writes the stored pairs as JSON Lines on stdout, oldest first, one
pair per line: the input of an offline judge, which sends each verdict back to the admin API's
``POST /v1/feedback`` with the pair's ``pair_id`` and a ``shadow_verdict``. ``pairs ROUTE
[--limit N]`` shows the newest as a table. Both read the whole span page by page (``before``);
entries that do not parse are skipped, and their number said on stderr. Admin URL, token and
exit statuses: ``control.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from config import jsonsafe
from control.admin_client import AdminApi

PROG = "splitgate shadow"
HELP = "mirror a route to a shadow track, and read its pairs (show, export for a judge)"
DESCRIPTION = (
    "Mirror a share of a route's requests to a shadow track, in the background, and read "
    "the pairs kept for them: the primary's answer and the shadow's. Verdicts on pairs go to "
    "the admin API's POST /v1/feedback, one per pair."
)
LIMITS = (
    ("--max-in-flight", "max_in_flight", int, "copies at once per proxy process (default 16)"),
    (
        "--max-tokens-per-minute",
        "max_tokens_per_minute",
        int,
        "tokens the copies may use a minute per proxy process (default: no limit)",
    ),
    ("--timeout", "timeout", str, "a copy's own deadline, e.g. 2m (default 300 s)"),
    ("--text-bytes", "text_bytes", int, "with --store-text: bytes of each answer kept (4096)"),
    ("--max-pairs", "max_pairs", int, "pairs kept for the route (default 1000; 0: none)"),
    ("--pairs-ttl", "pairs_ttl", str, "how long a pair is kept, e.g. 12h (default 1 day)"),
)
PAGE = 1000
"""Entries asked for in one call: the API's most."""
SHOWN = 20
HEADER = ("ID", "REQUEST", "VERSIONS", "STATUS", "LATENCY MS", "FINISH", "CHARS")
NONE = "-"


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of pairs, 1 or more")
    return int(text)


def build(
    p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """``set``, ``off``, ``export`` and ``pairs`` under ``p``; each takes the shared options
    too (``parents``)."""
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    put = sub.add_parser(
        "set",
        parents=parents,
        help="mirror a route: splitgate shadow set chat --track canary --percent 10",
        description="Mirror PERCENT of the route's POST requests to TRACK (not the baseline), "
        "in the background; users only ever get their own track's answer. Limits left out "
        "keep their defaults.",
    )
    put.add_argument("route")
    put.add_argument("--track", required=True, help="the shadow track (one of the route's)")
    put.add_argument("--percent", required=True, type=float, help="share mirrored, 0-100")
    for flag, _, kind, text in LIMITS:
        put.add_argument(flag, type=kind, help=text)
    put.add_argument(
        "--store-text", action="store_true", help="keep the answers' text in the pairs"
    )
    put.add_argument("--reason", default="", help="recorded in the audit log")
    off = sub.add_parser("off", parents=parents, help="stop mirroring a route")
    off.add_argument("route")
    off.add_argument("--reason", default="", help="recorded in the audit log")
    export = sub.add_parser(
        "export",
        parents=parents,
        help="write the route's pairs as JSON Lines, oldest first, for an offline judge",
        description="Every stored pair of the route (or the N newest), oldest first, one JSON "
        "object per line, on stdout.",
    )
    export.add_argument("route")
    export.add_argument(
        "--limit", type=_count, metavar="N", help="only the N newest pairs (default: all)"
    )
    pairs = sub.add_parser(
        "pairs",
        parents=parents,
        help="show the route's newest pairs: versions, statuses, latencies, finish, text length",
        description="The route's newest pairs, newest first, one line each (primary/shadow).",
    )
    pairs.add_argument("route")
    pairs.add_argument(
        "--limit", type=_count, default=SHOWN, metavar="N", help=f"pairs shown (default {SHOWN})"
    )


def run(api: AdminApi, args: argparse.Namespace) -> int:
    path = f"/v1/routes/{quote(args.route, safe='')}/shadow"
    if args.command == "set":
        body: dict[str, Any] = {"track": args.track, "percent": args.percent}
        for _, name, _, _ in LIMITS:
            if getattr(args, name) is not None:
                body[name] = getattr(args, name)
        body.update(store_text=args.store_text, reason=args.reason)
        answer = api.call("PUT", path, body)
        print(jsonsafe.dumps(answer, indent=2) if args.json else _mirroring(answer))
        return 0
    if args.command == "off":
        answer = api.call("DELETE", path, params={"reason": args.reason})
        print(jsonsafe.dumps(answer, indent=2) if args.json else _mirroring(answer))
        return 0
    found, unreadable = fetch(api, args.route, args.limit)
    if args.command == "export":
        for pair in reversed(found):
            sys.stdout.write(jsonsafe.dumps(pair, separators=(",", ":")) + "\n")
    else:
        print("\n".join(table(found)) if found else f"no shadow pairs kept for {args.route}")
    if unreadable:
        print(f"{PROG}: {unreadable} stored pairs could not be read (skipped)", file=sys.stderr)
    return 0


def _mirroring(answer: Mapping[str, Any]) -> str:
    route, shadow = answer["route"], answer["route"].get("shadow")
    where = f"route {route['name']}, generation {answer['generation']}"
    if not shadow:
        return f"{where}: not mirrored"
    text = "with text" if shadow.get("store_text") else "without text"
    return (
        f"{where}: {shadow['percent']:g} % of POST requests mirrored to {shadow['track']} "
        f"(at most {shadow['max_in_flight']} in flight; pairs {text})"
    )


def fetch(api: AdminApi, route: str, limit: int | None) -> tuple[list[dict[str, Any]], int]:
    """The ``limit`` newest pairs (all without it), newest first, and the entries skipped."""
    path = f"/v1/routes/{quote(route, safe='')}/shadow/pairs"
    found: list[dict[str, Any]] = []
    unreadable = 0
    before: str | None = None
    while limit is None or len(found) < limit:
        params = {"limit": str(PAGE if limit is None else min(PAGE, limit - len(found)))}
        if before is not None:
            params["before"] = before
        page = api.call("GET", path, params=params)
        found.extend(page["pairs"])
        unreadable += int(page.get("unreadable") or 0)
        before = page.get("next")
        if before is None:
            break
    return found, unreadable


def table(pairs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One aligned line per pair; each figure as primary/shadow."""
    body = [HEADER, *(_row(p) for p in pairs)]
    widths = [max(len(r[i]) for r in body) for i in range(len(HEADER))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]


def _row(pair: Mapping[str, Any]) -> tuple[str, ...]:
    primary, shadow = pair["primary"], pair["shadow"]

    def both(name: str, shown: Any = str) -> str:
        return "/".join(
            NONE if side.get(name) is None else shown(side[name]) for side in (primary, shadow)
        )

    return (
        str(pair.get("id") or NONE),
        str(pair["request_id"]),
        f"{primary['version']}/{shadow['version']}",
        "/".join(str(s.get("status") or s.get("error") or NONE) for s in (primary, shadow)),
        both("latency_ms", lambda ms: f"{ms:,.0f}"),
        both("finish_reason"),
        "/".join(
            f"{s.get('text_chars', 0)}{'+' if s.get('text_truncated') else ''}"
            for s in (primary, shadow)
        ),
    )
