"""``splitgate rollout``: start a rollout from a plan file, follow it, act on it.

``start PLAN.yaml [--wait]`` exits 0 when the rollout is promoted (or an A/B test completes)
and 1 when it is rolled back or aborted (with ``--wait``), so a CI job can gate on it;
``status [ID]`` shows one or all, ``status ID --watch`` follows one (redrawn in place on a
terminal, a line per change in a log, exit as ``--wait``); ``approve|promote|pause|resume|abort
ID`` act; ``check ID ITEM [--note TEXT]`` attests a checklist item; ``verdicts ID`` shows the
last looks. What they print is rendered by ``control.views``. Admin URL and token, and the
exit statuses on errors, Ctrl-C and a closed pipe: ``control.cli``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from control import views
from control.admin_client import AdminApi
from control.screen import Screen, is_terminal, sleep_until

PROG = "splitgate rollout"
HELP = "start a rollout from a plan file, follow it, approve, promote, pause, resume, abort"
DESCRIPTION = "Run and follow rollouts."
FINAL = {"promoted": 0, "completed": 0, "rolled_back": 1, "aborted": 1}
TIMED_OUT = 3
REFRESH_S = 1.0


def fetch(api: AdminApi, rollout_id: str) -> tuple[dict[str, Any], bool | None]:
    """The record, and whether every live replica applies its phase's weights (as the
    runner's last look found: ``acked``; None before its first look)."""
    record = api.call("GET", f"/v1/rollouts/{rollout_id}")
    return record, record.get("acked")


def follow(api: AdminApi, rollout_id: str, timeout: float, printed: str = "") -> int:
    """Follow a rollout to its end: redrawn in place on a terminal, a line per change in a
    log. 0 promoted or completed, 1 rolled back or aborted, 3 still going at ``timeout``."""
    if is_terminal(sys.stdout):
        return _follow_screen(api, rollout_id, timeout)
    return _follow_lines(api, rollout_id, timeout, printed)


def ended(record: dict[str, Any]) -> bool:
    """Final, and its last weights written (a promotion's handover to the baseline)."""
    return record["state"]["status"] in FINAL and not record.get("desired")


def _follow_screen(api: AdminApi, rollout_id: str, timeout: float) -> int:
    screen = Screen(sys.stdout, wrap=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            tick = time.monotonic() + REFRESH_S
            record, ok = fetch(api, rollout_id)
            screen.draw(views.status_lines(record, time.time(), ok))
            status = record["state"]["status"]
            if ended(record):
                return FINAL[status]
            if tick > deadline:
                return _timed_out(record, timeout)
            sleep_until(tick)
    finally:
        screen.close()


def _follow_lines(api: AdminApi, rollout_id: str, timeout: float, printed: str) -> int:
    """One line per change; ``printed``: the line already shown (by ``start``)."""
    seen: tuple[Any, ...] = ()
    deadline = time.monotonic() + timeout
    while True:
        tick = time.monotonic() + REFRESH_S
        record, ok = fetch(api, rollout_id)
        state = record["state"]
        # Countdowns in waiting_for change every look; a log wants a line per real change.
        key = (
            state["status"],
            state["phase"],
            len(state["history"]),
            re.sub(r"\d+", "#", views.waiting(record, ok)),
        )
        line = views.headline(record, ok)
        if key != seen and line != printed:
            print(line, flush=True)
            printed = line
        seen = key
        if ended(record):
            print("\n".join(views.status_lines(record, time.time(), ok)), flush=True)
            return FINAL[state["status"]]
        if tick > deadline:
            return _timed_out(record, timeout)
        sleep_until(tick)


def _timed_out(record: Mapping[str, Any], timeout: float) -> int:
    print(
        f"{PROG}: {record['id']} is still {record['state']['status']} after {views.span(timeout)}",
        file=sys.stderr,
    )
    return TIMED_OUT


def build(
    p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """The subcommands under ``p``; each takes the shared options too (``parents``)."""
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", parents=parents, help="start a rollout from a plan file")
    start.add_argument("plan", type=Path)
    start.add_argument(
        "--wait", action="store_true", help="follow it to the end; exit 0 promoted, 1 rolled back"
    )
    start.add_argument("--timeout", type=float, default=7 * 86400, help="seconds (exit 3)")
    status = sub.add_parser("status", parents=parents, help="one rollout, or all")
    status.add_argument("id", nargs="?")
    status.add_argument(
        "--watch", action="store_true", help="follow it to the end (exit as start --wait)"
    )
    status.add_argument("--timeout", type=float, default=7 * 86400, help="seconds (exit 3)")
    for name in ("approve", "promote", "pause", "resume", "abort"):
        command = sub.add_parser(name, parents=parents, help=f"{name} a rollout")
        command.add_argument("id")
        command.add_argument(
            "--reason", default="", help="why: kept in the rollout's history and the audit log"
        )
        command.add_argument("--actor", default=env.get("USER", "cli"), help="who decides")
    check = sub.add_parser(
        "check", parents=parents, help="attest a checklist item (recorded with who and when)"
    )
    check.add_argument("id")
    check.add_argument("item")
    check.add_argument("--note", default="", help="what was checked, e.g. a CI run URL")
    check.add_argument("--actor", default=env.get("USER", "cli"), help="who attests")
    verdicts = sub.add_parser(
        "verdicts", parents=parents, help="the last looks' verdicts with their figures"
    )
    verdicts.add_argument("id")
    verdicts.add_argument("--limit", type=int, default=5)


def run(api: AdminApi, args: argparse.Namespace) -> int:
    if args.command == "start":
        try:
            text = args.plan.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{args.plan}: {exc.strerror or exc}") from None
        record = api.send_text("POST", "/v1/rollouts", text, source=str(args.plan))
        first = views.headline(record)
        print(first, flush=True)
        return follow(api, record["id"], args.timeout, first) if args.wait else 0
    if args.command == "status":
        return _status(api, args)
    if args.command == "verdicts":
        record = api.call("GET", f"/v1/rollouts/{args.id}")
        limit = {"limit": str(args.limit)}
        looks = api.call("GET", f"/v1/rollouts/{args.id}/verdicts", params=limit)["looks"]
        phases = record.get("plan", {}).get("phases") or []
        now = time.time()
        for look in looks:
            print("\n".join(views.look_lines(look, phases, now)))
        return 0
    if args.command == "check":
        path = f"/v1/rollouts/{args.id}/checks/{args.item}"
        actor = {"X-Splitgate-Actor": args.actor}
        record = api.call("POST", path, {"note": args.note}, headers=actor)
    else:
        body = {"reason": args.reason} if args.reason else {}
        actor = {"X-Splitgate-Actor": args.actor}
        record = api.call("POST", f"/v1/rollouts/{args.id}/{args.command}", body, headers=actor)
    print(views.headline(record))
    return 0


def _status(api: AdminApi, args: argparse.Namespace) -> int:
    if args.watch:
        if not args.id:
            raise ValueError("status --watch follows one rollout: give its ID")
        return follow(api, args.id, args.timeout)
    if not args.id:
        rollouts = api.call("GET", "/v1/rollouts")["rollouts"]
        print("\n".join(views.headline(r) for r in rollouts) or "no rollouts")
        return 0
    record, ok = fetch(api, args.id)
    print("\n".join(views.status_lines(record, time.time(), ok)))
    return 0
