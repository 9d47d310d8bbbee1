"""``splitgate flags``: feature flags through the admin API.

``list``; ``get NAME`` (YAML that ``set`` takes back); ``set NAME FILE.yaml`` (errors name the
file and the line); ``delete NAME``; ``explain --route R --header k=v ...`` (which track and
why); ``pause|resume NAME``; ``schedule NAME`` (each dated step's state). Admin URL and token,
and exit statuses, as for ``splitgate weights``: 0 done, 1 refused by the API, 2 bad usage or
the API unreachable.
"""

from __future__ import annotations

import argparse
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from config import jsonsafe
from control.cli import admin_options, call, guarded, no_token, request_text

PROG = "splitgate flags"


def pairs(given: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for pair in given:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{pair!r}: expected {what}=VALUE, e.g. x-user-segment=premium")
        out[name] = value
    return out


def summary(name: str, flag: Mapping[str, Any]) -> str:
    audience = [*flag["target_groups"], *(["conditions"] if flag["conditions"] else [])]
    allowed = flag["override"]["enabled_for"]
    parts = [
        f"{name}: {flag['route']} → {flag['track']}",
        f"{flag['rollout_percentage']:g} % of {' or '.join(audience) or 'nobody'}",
    ]
    if allowed:
        parts.append(f"+{len(allowed)} enabled_for")
    if not flag["enabled"]:
        parts.append("DISABLED")
    schedule = flag.get("gradual_rollout")
    if schedule:
        paused = ", paused" if schedule["paused"] else ""
        parts.append(f"schedule of {len(schedule['schedule'])} steps{paused}")
    return "  ".join(parts)


def explanation(answer: Mapping[str, Any]) -> list[str]:
    track = answer["track"] or "drawn at random (no sticky key)"
    by = f"flag {answer['flag']}" if answer["flag"] else "no flag"
    lines = [f"track {track} ({by}, rule {answer['rule']})", f"  {answer['reason']}"]
    for step in answer["flags"]:
        lines.append(f"  {step['flag']}: {step['outcome']} ({step['reason']})")
    return lines


def schedule_lines(status: Mapping[str, Any]) -> list[str]:
    if status.get("removed"):
        return [f"flag {status['flag']} is gone; {status['applied']} steps were applied"]
    paused = "  PAUSED" if status["paused"] else ""
    lines = [
        f"flag {status['flag']}: {status['applied']} of {len(status['steps'])} steps applied "
        f"(times in {status['timezone']}){paused}"
    ]
    for step in status["steps"]:
        audience = f" of {step['target']}" if step["target"] else ""
        removal = ", remove the flag" if step["action"] == "remove_flag" else ""
        gate = "  [analysis]" if step["requires_analysis"] else ""
        state = step["state"]
        if step["applied_at"] is not None:
            when = datetime.fromtimestamp(step["applied_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
            state += f" {when}" + (
                f" (generation {step['generation']})" if step["generation"] else ""
            )
        lines.append(
            f"  {step['step']}. {step['date']:<16} {step['percentage']:g} %{audience}{removal}"
            f"{gate}: {state}"
        )
    last = status.get("last")
    if last:
        lines.append(f"last: {last['outcome']}: {last['detail']}")
    return lines


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Read and change feature flags.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every flag, in evaluation order")
    sub.add_parser("get", help="one flag, as YAML that `set` takes back").add_argument("name")
    put = sub.add_parser("set", help="add or replace a flag from a YAML file")
    put.add_argument("name")
    put.add_argument("file", type=Path)
    delete = sub.add_parser("delete", help="remove a flag: its users go back to the weights")
    delete.add_argument("name")
    for name in ("pause", "resume"):
        sub.add_parser(name, help=f"{name} a flag's schedule").add_argument("name")
    for command in (put, delete, sub.choices["pause"], sub.choices["resume"]):
        command.add_argument("--reason", default="", help="recorded in the audit log")
    sub.add_parser("schedule", help="the state of each dated step").add_argument("name")
    why = sub.add_parser("explain", help="which track a request would get, and why")
    why.add_argument("--route", required=True)
    why.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    why.add_argument("--user", help="the sticky key (instead of the header that carries it)")
    why.add_argument("--attribute", action="append", default=[], metavar="NAME=VALUE")
    admin_options(p, env, list(sub.choices.values()))
    return p


def run(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """Call the API; the answer and the lines that show it."""
    base, token, name = args.admin_url, args.token, getattr(args, "name", "")
    quoted = urllib.parse.quote(name, safe="")
    given = getattr(args, "reason", "")
    reason = "?" + urllib.parse.urlencode({"reason": given}) if given else ""
    if args.command == "list":
        answer = call(base, token, "GET", "/v1/flags")
        lines = [summary(n, f) for n, f in answer["flags"].items()] or ["no feature flags"]
        return answer, lines
    if args.command == "get":
        answer = call(base, token, "GET", f"/v1/flags/{quoted}")
        text = yaml.safe_dump(answer["flag"], sort_keys=False, allow_unicode=True)
        return answer, [f"# flag {name} at generation {answer['generation']}", text.rstrip()]
    if args.command == "set":
        try:
            text = args.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{args.file}: {exc.strerror or exc}") from None
        answer = request_text(
            base, token, f"/v1/flags/{quoted}{reason}", text, str(args.file), method="PUT"
        )
        return answer, [f"flag {name} set at generation {answer['generation']}"]
    if args.command == "delete":
        answer = call(base, token, "DELETE", f"/v1/flags/{quoted}{reason}")
        return answer, [f"flag {name} deleted at generation {answer['generation']}"]
    if args.command in ("pause", "resume"):
        path = f"/v1/flags/{quoted}/schedule/{args.command}"
        answer = call(base, token, "POST", path, {"reason": args.reason})
        return answer, [f"schedule of {name} {args.command}d at generation {answer['generation']}"]
    if args.command == "schedule":
        answer = call(base, token, "GET", f"/v1/flags/{quoted}/schedule")
        return answer, schedule_lines(answer)
    body: dict[str, Any] = {"route": args.route, "headers": pairs(args.header, "HEADER")}
    if args.attribute:
        body["attributes"] = pairs(args.attribute, "ATTRIBUTE")
    if args.user is not None:
        body["user_id"] = args.user
    answer = call(base, token, "POST", "/v1/flags/explain", body)
    return answer, explanation(answer)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = parser(env).parse_args(argv)
    if no_token(PROG, args):
        return 2
    return guarded(PROG, args.admin_url, lambda: show(args))


def show(args: argparse.Namespace) -> int:
    answer, lines = run(args)
    if args.json:
        print(jsonsafe.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print("\n".join(lines))
    return 0
