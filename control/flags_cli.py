"""``splitgate flags``: feature flags through the admin API.

``list``; ``get NAME`` (YAML that ``set`` takes back); ``set NAME FILE.yaml`` (errors name the
file and the line); ``delete NAME``; ``explain --route R --header k=v ...`` (which track and
why); ``pause|resume NAME``; ``schedule NAME`` (each dated step's state). Admin URL and token,
and exit statuses (0 done, 1 refused by the API, 2 bad usage or the API unreachable):
``control.cli``.
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from config import jsonsafe
from control.admin_client import AdminApi

HELP = "feature flags: list, get, set, delete, explain, pause, resume, schedule"
DESCRIPTION = "Read and change feature flags."


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


def build(
    p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    """The subcommands under ``p``; each takes the shared options too (``parents``)."""
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=parents, help=summary)

    command("list", "every flag, in evaluation order")
    command("get", "one flag, as YAML that `set` takes back").add_argument("name")
    put = command("set", "add or replace a flag from a YAML file")
    put.add_argument("name")
    put.add_argument("file", type=Path)
    delete = command("delete", "remove a flag: its users go back to the weights")
    delete.add_argument("name")
    for name in ("pause", "resume"):
        command(name, f"{name} a flag's schedule").add_argument("name")
    for changes in (put, delete, sub.choices["pause"], sub.choices["resume"]):
        changes.add_argument("--reason", default="", help="recorded in the audit log")
    command("schedule", "the state of each dated step").add_argument("name")
    why = command("explain", "which track a request would get, and why")
    why.add_argument("--route", required=True)
    why.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    why.add_argument("--user", help="the sticky key (instead of the header that carries it)")
    why.add_argument("--attribute", action="append", default=[], metavar="NAME=VALUE")


def run(api: AdminApi, args: argparse.Namespace) -> int:
    answer, lines = ask(api, args)
    if args.json:
        print(jsonsafe.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print("\n".join(lines))
    return 0


def ask(api: AdminApi, args: argparse.Namespace) -> tuple[Any, list[str]]:
    """Call the API; the answer and the lines that show it."""
    name = getattr(args, "name", "")
    quoted = urllib.parse.quote(name, safe="")
    given = getattr(args, "reason", "")
    reason = {"reason": given} if given else None
    if args.command == "list":
        answer = api.call("GET", "/v1/flags")
        lines = [summary(n, f) for n, f in answer["flags"].items()] or ["no feature flags"]
        return answer, lines
    if args.command == "get":
        answer = api.call("GET", f"/v1/flags/{quoted}")
        text = yaml.safe_dump(answer["flag"], sort_keys=False, allow_unicode=True)
        return answer, [f"# flag {name} at generation {answer['generation']}", text.rstrip()]
    if args.command == "set":
        try:
            text = args.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{args.file}: {exc.strerror or exc}") from None
        answer = api.send_text("PUT", f"/v1/flags/{quoted}", text, str(args.file), params=reason)
        return answer, [f"flag {name} set at generation {answer['generation']}"]
    if args.command == "delete":
        answer = api.call("DELETE", f"/v1/flags/{quoted}", params=reason)
        return answer, [f"flag {name} deleted at generation {answer['generation']}"]
    if args.command in ("pause", "resume"):
        path = f"/v1/flags/{quoted}/schedule/{args.command}"
        answer = api.call("POST", path, {"reason": args.reason})
        return answer, [f"schedule of {name} {args.command}d at generation {answer['generation']}"]
    if args.command == "schedule":
        answer = api.call("GET", f"/v1/flags/{quoted}/schedule")
        return answer, schedule_lines(answer)
    body: dict[str, Any] = {"route": args.route, "headers": pairs(args.header, "HEADER")}
    if args.attribute:
        body["attributes"] = pairs(args.attribute, "ATTRIBUTE")
    if args.user is not None:
        body["user_id"] = args.user
    answer = api.call("POST", "/v1/flags/explain", body)
    return answer, explanation(answer)
