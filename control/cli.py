"""``splitgate weights get|set``, and what the admin API's command-line tools share.

The admin URL and token come from ``--admin-url``/``--token`` (before or after the
subcommand) or ``SPLITGATE_ADMIN_URL``/``SPLITGATE_ADMIN_TOKEN``. Exit status: 0 done, 1
refused by the API (the message names the field and the reason), 2 bad usage or the API
unreachable, 130 interrupted (Ctrl-C), 141 the reader of stdout went away (``| head``).
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import json
import os
import re
import shutil
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from config import jsonsafe

DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"
INTERRUPTED = 130
PIPE_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader went away."""


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(describe(status, body))


class Unreachable(Exception):
    """The HTTP exchange with the admin API failed (not an answer, and not our own stdout)."""


def describe(status: int, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return "; ".join(f"{status} {e.get('field')}: {e.get('reason')}" for e in body["errors"])
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"{status} {body['error'].get('message')}"
    return f"{status} {body}"


def call(
    base: str,
    token: str,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    return _send(
        base, token, method, path, data, {"Content-Type": "application/json", **(headers or {})}
    )


def request_text(
    base: str, token: str, path: str, text: str, source: str, method: str = "POST"
) -> Any:
    """Send a YAML document (a plan, a flag); a 422 names the file in its field errors."""
    try:
        return _send(base, token, method, path, text.encode(), {"Content-Type": "application/yaml"})
    except ApiError as exc:
        if isinstance(exc.body, dict) and isinstance(exc.body.get("errors"), list):
            for e in exc.body["errors"]:
                e["field"] = f"{source}: {e.get('field')}"
        raise ApiError(exc.status, exc.body) from None


def _send(
    base: str, token: str, method: str, path: str, data: bytes | None, headers: Mapping[str, str]
) -> Any:
    request = urllib.request.Request(
        base.rstrip("/") + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "X-Splitgate-Actor": f"{getpass.getuser()}@cli",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except (ValueError, OSError, http.client.HTTPException):
            payload = exc.reason
        raise ApiError(exc.code, payload) from None
    except (OSError, http.client.HTTPException) as exc:
        # Only here is a broken pipe the connection's: on stdout it is the reader leaving.
        raise Unreachable(str(getattr(exc, "reason", None) or exc)) from None
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise Unreachable(f"{base} answered with something else than JSON") from None


# What the command-line tools share ---------------------------------------------------------


def admin_options(
    p: argparse.ArgumentParser,
    env: Mapping[str, str],
    subcommands: Sequence[argparse.ArgumentParser] = (),
    *,
    json_flag: bool = True,
) -> None:
    """``--admin-url``, ``--token`` (and ``--json``) on ``p`` with their defaults, and on each
    subcommand too, so they may follow it; there they default to nothing, so a value given
    before the subcommand is kept."""
    for parser, top in ((p, True), *((s, False) for s in subcommands)):

        def default(value: Any, top: bool = top) -> Any:
            return value if top else argparse.SUPPRESS

        parser.add_argument(
            "--admin-url",
            default=default(env.get("SPLITGATE_ADMIN_URL", DEFAULT_ADMIN_URL)),
            help="the control plane's admin API (env SPLITGATE_ADMIN_URL)",
        )
        parser.add_argument(
            "--token",
            default=default(env.get("SPLITGATE_ADMIN_TOKEN")),
            help="the admin token (env SPLITGATE_ADMIN_TOKEN)",
        )
        if json_flag:
            parser.add_argument(
                "--json",
                action="store_true",
                default=default(False),
                help="print the API's JSON answer",
            )


def no_token(prog: str, args: argparse.Namespace) -> bool:
    if args.token:
        return False
    print(f"{prog}: no token: pass --token or set SPLITGATE_ADMIN_TOKEN", file=sys.stderr)
    return True


def guarded(prog: str, admin_url: str, work: Callable[[], int]) -> int:
    """Run a command; its errors become a message and an exit status, never a traceback."""
    try:
        code = work()
        sys.stdout.flush()  # inside the guard: a closed pipe must surface here, not at exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        return INTERRUPTED
    except ApiError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except Unreachable as exc:
        print(f"{prog}: cannot reach the admin API at {admin_url}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2


def _stdout_gone() -> int:
    """Whatever is still buffered goes nowhere, so the flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # a stdout without a descriptor (tests) has nothing to flush at exit
    finally:
        os.close(devnull)
    return PIPE_CLOSED


def is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM") != "dumb"


_FIGURE = re.compile(r"(?<=\d) (?=(?:%|ms|s|min|h|d)(?:\W|$))")


class Screen:
    """Redraws a block of lines in place on a terminal: the cursor goes back up over the
    previous frame and each line is rewritten and cleared to its end. No alternate screen,
    so the last frame stays in the scrollback when the command ends."""

    def __init__(self, out: TextIO, *, wrap: bool = False) -> None:
        self._out = out
        self._wrap = wrap
        self._drawn = 0

    def draw(self, lines: Sequence[str]) -> None:
        width, height = shutil.get_terminal_size()
        # Lines the terminal wraps, or more lines than fit, would break the count of lines to
        # go back up: long lines are wrapped here (prose) or cut (tables), and the bottom cut.
        shown = [part for line in lines for part in self._fit(line, max(10, width - 1))]
        shown = shown[: max(1, height - 1)]
        up = f"\r\x1b[{self._drawn}A" if self._drawn else "\x1b[?25l"
        body = "".join(f"{line}\x1b[K\n" for line in shown)
        self._out.write(f"{up}{body}\x1b[J")
        self._out.flush()
        self._drawn = len(shown)

    def _fit(self, line: str, width: int) -> list[str]:
        if not self._wrap or len(line) <= width:
            return [line[:width]]
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        # A figure stays on one line with its unit: textwrap does not break at a no-break space.
        glued = _FIGURE.sub("\u00a0", line)
        wrapped = textwrap.wrap(glued, width, subsequent_indent=indent) or [""]
        return [part.replace("\u00a0", " ") for part in wrapped]

    def close(self) -> None:
        self._out.write("\x1b[?25h")
        self._out.flush()


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


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


PROG = "splitgate weights"


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Read or set a route's weights.")
    sub = p.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", help="show a route's tracks and weights")
    get.add_argument("route")
    put = sub.add_parser("set", help="set weights: splitgate weights set chat stable=75 canary=25")
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
    admin_options(p, env, [get, put])
    return p


def run(args: argparse.Namespace) -> int:
    base, token, path = args.admin_url, args.token, f"/v1/routes/{args.route}"
    if args.command == "get":
        answer = call(base, token, "GET", path)
    else:
        headers = {"If-Match": args.if_match} if args.if_match else {}
        body = {"weights": parse_weights(args.weights), "reason": args.reason}
        call(base, token, "PUT", f"{path}/weights", body, headers)
        answer = call(base, token, "GET", path)
        deadline = time.monotonic() + (args.wait or 0)
        while args.wait and not answer["converged"] and time.monotonic() < deadline:
            time.sleep(0.1)
            answer = call(base, token, "GET", path)
        if args.wait and not answer["converged"]:
            print(
                show(
                    answer["route"], answer["generation"], answer["replicas"], answer.get("digest")
                )
            )
            print(
                f"{PROG}: not every replica applied generation {answer['generation']} within {args.wait:g} s",
                file=sys.stderr,
            )
            return 1
    print(
        jsonsafe.dumps(answer, indent=2)
        if args.json
        else show(answer["route"], answer["generation"], answer["replicas"], answer.get("digest"))
    )
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser(os.environ if env is None else env).parse_args(argv)
    if no_token(PROG, args):
        return 2
    return guarded(PROG, args.admin_url, lambda: run(args))
