"""``splitgate top [ROUTE]``: each track's traffic and health over the last minute, live.

Per route and track (and version, when a track changed version inside the window): its weight,
requests per second, error rate, p95 latency, p95 time to first byte (the first token on
streams) and tokens per request, from the fleet-wide windows of the admin API
(``GET /v1/routes/{route}/metrics?window=1m``); without ROUTE, every route of
``GET /v1/routes``. On a terminal the table is redrawn in place every ``--interval`` seconds
until Ctrl-C; in a log it is printed again each time, headed by the time; ``--once`` prints it
once. Admin URL, token and exit statuses: ``control.cli``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from control.admin_client import AdminApi
from control.screen import Screen, is_terminal, sleep_until

HELP = "each track's requests/s, errors, latency and tokens over the last minute, live"
DESCRIPTION = "Per-track requests/s, errors, latency and tokens, live."
HEADER = ("ROUTE", "TRACK", "VERSION", "WEIGHT", "REQ/S", "ERRORS", "P95", "TTFB P95", "TOK/REQ")
RIGHT = {"WEIGHT", "REQ/S", "ERRORS", "P95", "TTFB P95", "TOK/REQ"}
NONE = "-"


def _ms(value: float | None) -> str:
    if value is None:
        return NONE
    return "over the top bucket" if math.isinf(value) else f"{value:,.0f} ms"


def _row(route: str, track: Mapping[str, Any], window_s: float) -> tuple[str, ...]:
    requests = track.get("requests") or 0
    rate = track.get("error_rate")
    tokens = track.get("tokens_per_request")
    weight = track.get("weight")
    return (
        route,
        str(track["track"]),
        str(track.get("version") or NONE),
        NONE if weight is None else f"{weight:g} %",
        f"{requests / window_s:.1f}" if window_s > 0 else NONE,
        NONE if rate is None else f"{rate * 100:.2f} %",
        _ms((track.get("latency_ms") or {}).get("p95")),
        _ms((track.get("ttfb_ms") or {}).get("p95")),
        NONE if tokens is None else f"{tokens:,.0f}",
    )


def rows(answer: Mapping[str, Any], tracks: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One route's rows: each track measured in the window, then the route's tracks that
    served nothing in it (so a new canary shows before its first request)."""
    route, window_s = str(answer["route"]), float(answer.get("window_s") or 0)
    out = [_row(route, t, window_s) for t in answer.get("tracks", [])]
    measured = {t["track"] for t in answer.get("tracks", [])}
    for t in tracks:
        if t["name"] not in measured:
            idle = {"track": t["name"], "version": t.get("version"), "weight": t.get("weight")}
            out.append(_row(route, {**idle, "requests": 0}, window_s))
    return out


def table(answers: Sequence[Mapping[str, Any]], routes: Mapping[str, Any]) -> list[str]:
    """The aligned table, and a line per route whose split does not match its weights."""
    body: list[tuple[str, ...]] = [HEADER]
    for answer in answers:
        body.extend(rows(answer, routes.get(answer["route"], {}).get("tracks", [])))
    widths = [max(len(r[i]) for r in body) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.rjust(w) if HEADER[i] in RIGHT else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in body
    ]
    for answer in answers:
        ratio = answer.get("sample_ratio") or {}
        if ratio.get("mismatch"):
            lines.append(
                f"{answer['route']}: the split does not match the weights "
                f"(sample ratio p = {ratio.get('p_value', 0):.2g})"
            )
    return lines


def snapshot(api: AdminApi, route: str | None, window: str) -> list[str]:
    """Read the routes and their metrics; the title line and the table."""
    document = api.call("GET", "/v1/routes")
    routes = {r["name"]: r for r in document["routes"]}
    names = [route] if route else sorted(routes)
    answers = [
        api.call(
            "GET",
            f"/v1/routes/{urllib.parse.quote(name, safe='')}/metrics",
            params={"window": window},
        )
        for name in names
    ]
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    title = f"{stamp}  last {window}, generation {document['generation']}"
    return [title, *table(answers, routes)] if answers else [title, "no routes"]


def build(
    p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    p.add_argument("route", nargs="?", help="one route (default: every route)")
    p.add_argument("--once", action="store_true", help="print the table once and exit")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--window", default="1m", help="span measured (10s to 6h; default 1m)")


def run(api: AdminApi, args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise ValueError("--interval must be above 0")

    def frame() -> list[str]:
        return snapshot(api, args.route, args.window)

    if args.once or not is_terminal(sys.stdout):
        while True:
            tick = time.monotonic() + args.interval
            print("\n".join(frame()), flush=True)
            if args.once:
                return 0
            print(flush=True)
            sleep_until(tick)
    screen = Screen(sys.stdout)
    try:
        while True:
            tick = time.monotonic() + args.interval
            screen.draw(frame())
            sleep_until(tick)
    finally:
        screen.close()
