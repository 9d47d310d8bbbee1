"""``splitgate weights get|set``: the admin API from a shell or a CI/CD job.

The admin URL and token come from ``--admin-url``/``--token`` or ``SPLITGATE_ADMIN_URL``/
``SPLITGATE_ADMIN_TOKEN``. Exit status: 0 done, 1 refused by the API (the message names the
field and the reason), 2 bad usage or the API unreachable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        super().__init__(describe(status, body))


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
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except ValueError:
            payload = exc.reason
        raise ApiError(exc.code, payload) from None


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


def show(route: dict[str, Any], generation: int, replicas: Mapping[str, Any]) -> str:
    lines = [f"route {route['name']} at generation {generation}"]
    for track in route["tracks"]:
        lines.append(
            f"  {track['name']:<16} {track['weight']:>7g} %  {track['version']}  {', '.join(track['upstreams'])}"
        )
    if replicas:
        behind = [name for name, ack in replicas.items() if ack["generation"] < generation]
        lines.append(
            f"replicas: {len(replicas)} live, {len(behind)} behind"
            + (f" ({', '.join(behind)})" if behind else "")
        )
    else:
        lines.append("replicas: none reporting")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(
        prog="splitgate weights", description="Read or set a route's weights."
    )
    p.add_argument("--admin-url", default=env.get("SPLITGATE_ADMIN_URL", DEFAULT_ADMIN_URL))
    p.add_argument("--token", default=env.get("SPLITGATE_ADMIN_TOKEN"))
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
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
    args = p.parse_args(argv)
    if not args.token:
        print(
            "splitgate weights: no token: pass --token or set SPLITGATE_ADMIN_TOKEN",
            file=sys.stderr,
        )
        return 2
    try:
        if args.command == "get":
            answer = call(args.admin_url, args.token, "GET", f"/v1/routes/{args.route}")
        else:
            headers = {"If-Match": args.if_match} if args.if_match else {}
            body = {"weights": parse_weights(args.weights), "reason": args.reason}
            call(
                args.admin_url, args.token, "PUT", f"/v1/routes/{args.route}/weights", body, headers
            )
            answer = call(args.admin_url, args.token, "GET", f"/v1/routes/{args.route}")
            deadline = time.monotonic() + (args.wait or 0)
            while args.wait and not answer["converged"] and time.monotonic() < deadline:
                time.sleep(0.1)
                answer = call(args.admin_url, args.token, "GET", f"/v1/routes/{args.route}")
            if args.wait and not answer["converged"]:
                print(show(answer["route"], answer["generation"], answer["replicas"]))
                print(
                    f"splitgate weights: not every replica applied generation {answer['generation']} within {args.wait:g} s",
                    file=sys.stderr,
                )
                return 1
    except ValueError as exc:
        print(f"splitgate weights: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"splitgate weights: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"splitgate weights: cannot reach the admin API at {args.admin_url}: {exc}",
            file=sys.stderr,
        )
        return 2
    print(
        json.dumps(answer, indent=2)
        if args.json
        else show(answer["route"], answer["generation"], answer["replicas"])
    )
    return 0
