"""``splitgate shadow``: a route's shadow pairs (``config.shadow``) through the admin API
(``GET /v1/routes/{route}/shadow/pairs``).

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
HELP = "a route's shadow pairs: show the newest, export them for a judge (JSON Lines)"
DESCRIPTION = (
    "The pairs kept for a route's mirrored requests: the primary's answer and the shadow's. "
    "Verdicts on them go to the admin API's POST /v1/feedback, one per pair."
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
    """``export`` and ``pairs`` under ``p``; each takes the shared options too (``parents``)."""
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    found, unreadable = fetch(api, args.route, args.limit)
    if args.command == "export":
        for pair in reversed(found):
            sys.stdout.write(jsonsafe.dumps(pair, separators=(",", ":")) + "\n")
    else:
        print("\n".join(table(found)) if found else f"no shadow pairs kept for {args.route}")
    if unreadable:
        print(f"{PROG}: {unreadable} stored pairs could not be read (skipped)", file=sys.stderr)
    return 0


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
