"""``splitgate rollout``: start a rollout from a plan file, follow it, act on it.

``start PLAN.yaml [--wait]`` exits 0 when the rollout is promoted (or an A/B test completes)
and 1 when it is rolled back or aborted (with ``--wait``), so a CI job can gate on it;
``status [ID]`` shows one or all; ``approve|promote|pause|resume|abort ID`` act;
``check ID ITEM [--note TEXT]`` attests a checklist item; ``verdicts ID`` shows the last looks.
Admin URL and token as for ``splitgate weights``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from control.cli import DEFAULT_ADMIN_URL, ApiError, call, request_text

FINAL = {"promoted": 0, "completed": 0, "rolled_back": 1, "aborted": 1}


def line(record: dict[str, Any]) -> str:
    state = record["state"]
    head = f"{record['id']}: {state['status']} (phase {state['phase'] + 1})"
    waiting = record.get("waiting_for")
    tail = f" [waiting for {waiting}]" if waiting else ""
    if not state["history"]:
        return head + tail
    last = state["history"][-1]
    return f"{head} {last['kind']}: {last['detail']}{tail}"


def details(record: dict[str, Any]) -> list[str]:
    """The lines ``status ID`` adds: checklist, warnings, verdicts, report, post-deploy."""
    out = []
    for group in ("required", "recommended"):
        for name, done in record.get("checklist", {}).get(group, {}).items():
            mark = f"done by {done['by']} ({done['how']})" if done else "open"
            out.append(f"  checklist {group} {name}: {mark}")
    out.extend(f"  warning: {w}" for w in record.get("warnings", []))
    for verdict in record.get("verdicts", []):
        out.append(f"  {verdict['role']} {verdict['verdict']}: {verdict['reason']}")
    report = record.get("report")
    if report:
        out.append(f"  report ({report['ended']}):")
        out.extend(f"    {s}" for s in report["summary"])
    post = record.get("post_deploy")
    if post and post["status"] != "scheduled":
        out.append(f"  post-deploy {post['status']}:")
        out.extend(f"    {c['check']}: {c['verdict']} ({c['detail']})" for c in post["checks"])
    return out


def follow(base: str, token: str, rollout_id: str, timeout: float) -> int:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = call(base, token, "GET", f"/v1/rollouts/{rollout_id}")
        now = line(record)
        if now != seen:
            print(now, flush=True)
            seen = now
        status = record["state"]["status"]
        if status in FINAL:
            for extra in details(record):
                if "report" in extra or extra.startswith("    "):
                    print(extra)
            return FINAL[status]
        time.sleep(1.0)
    print(f"splitgate rollout: still {seen!r} after {timeout:g} s", file=sys.stderr)
    return 3


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="splitgate rollout", description="Run and follow rollouts.")
    p.add_argument("--admin-url", default=env.get("SPLITGATE_ADMIN_URL", DEFAULT_ADMIN_URL))
    p.add_argument("--token", default=env.get("SPLITGATE_ADMIN_TOKEN"))
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a rollout from a plan file")
    start.add_argument("plan", type=Path)
    start.add_argument(
        "--wait", action="store_true", help="follow it to the end; exit 0 promoted, 1 rolled back"
    )
    start.add_argument("--timeout", type=float, default=7 * 86400)
    status = sub.add_parser("status", help="one rollout, or all")
    status.add_argument("id", nargs="?")
    for name in ("approve", "promote", "pause", "resume", "abort"):
        sub.add_parser(name, help=f"{name} a rollout").add_argument("id")
    check = sub.add_parser("check", help="attest a checklist item (recorded with who and when)")
    check.add_argument("id")
    check.add_argument("item")
    check.add_argument("--note", default="", help="what was checked, e.g. a CI run URL")
    check.add_argument("--actor", default=env.get("USER", "cli"), help="who attests")
    verdicts = sub.add_parser("verdicts", help="the last looks' verdicts with their figures")
    verdicts.add_argument("id")
    verdicts.add_argument("--limit", type=int, default=5)
    args = p.parse_args(argv)
    if not args.token:
        print(
            "splitgate rollout: no token: pass --token or set SPLITGATE_ADMIN_TOKEN",
            file=sys.stderr,
        )
        return 2
    try:
        if args.command == "start":
            try:
                text = args.plan.read_text(encoding="utf-8")
            except OSError as exc:
                print(f"splitgate rollout: {args.plan}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            record = request_text(
                args.admin_url, args.token, "/v1/rollouts", text, source=str(args.plan)
            )
            print(line(record))
            return (
                follow(args.admin_url, args.token, record["id"], args.timeout) if args.wait else 0
            )
        if args.command == "check":
            record = call(
                args.admin_url,
                args.token,
                "POST",
                f"/v1/rollouts/{args.id}/checks/{args.item}",
                {"note": args.note},
                headers={"X-Splitgate-Actor": args.actor},
            )
            print(line(record))
            return 0
        if args.command == "verdicts":
            looks = call(
                args.admin_url,
                args.token,
                "GET",
                f"/v1/rollouts/{args.id}/verdicts?limit={args.limit}",
            )["looks"]
            for look in looks:
                print(f"at {look['at']:.0f} (phase {look['phase'] + 1}):")
                for v in look["verdicts"]:
                    print(f"  {v['role']} {v['verdict']}: {v['reason']}")
            return 0
        if args.command == "status":
            if args.id:
                record = call(args.admin_url, args.token, "GET", f"/v1/rollouts/{args.id}")
                print(line(record))
                for extra in details(record):
                    print(extra)
            else:
                for record in call(args.admin_url, args.token, "GET", "/v1/rollouts")["rollouts"]:
                    print(line(record))
            return 0
        print(
            line(
                call(
                    args.admin_url, args.token, "POST", f"/v1/rollouts/{args.id}/{args.command}", {}
                )
            )
        )
        return 0
    except ApiError as exc:
        print(f"splitgate rollout: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"splitgate rollout: cannot reach the admin API at {args.admin_url}: {exc}",
            file=sys.stderr,
        )
        return 2
