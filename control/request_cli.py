"""``splitgate request ID``: the routing decision behind one answered request, by the id in its
``X-Request-Id`` (or ``X-Splitgate-Feedback-Id``) header (``GET /v1/requests/{id}``).

Admin URL, token and exit statuses: ``control.cli``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from config import jsonsafe
from control import views
from control.admin_client import AdminApi

HELP = "the routing decision behind a request, by its X-Request-Id"
DESCRIPTION = (
    "Which route, track and version answered a request, and, when the sampled decision log "
    "kept it, by which rule (weights, a flag, the override), in which bucket and generation."
)


def build(
    p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser], env: Mapping[str, str]
) -> None:
    p.add_argument("id", help="the X-Request-Id (or X-Splitgate-Feedback-Id) of the answer")


def run(api: AdminApi, args: argparse.Namespace) -> int:
    answer = api.call("GET", f"/v1/requests/{quote(args.id, safe='')}")
    if args.json:
        print(jsonsafe.dumps(answer, indent=2))
    else:
        print("\n".join(lines(answer, time.time())))
    return 0


def lines(answer: Mapping[str, Any], now: float) -> list[str]:
    """The decision as a person reads it."""
    out = [f"{answer['route']} → {answer['track']} ({answer['version']})"]
    if not answer.get("logged"):
        hours = views.span(float(answer.get("lookup_period_s", 0)))
        out.append(f"not in the decision log (it samples requests, and keeps them {hours})")
        return out
    rule = str(answer.get("rule"))
    bucket = answer.get("bucket")
    where = f"bucket {bucket}" if bucket is not None else "no sticky key: drawn at random"
    out.append(f"rule {rule}, {where}, routing generation {answer.get('generation')}")
    if answer.get("chosen") != answer.get("answered"):
        out.append(f"chosen {answer.get('chosen')}, answered by {answer.get('answered')}")
    if answer.get("error"):
        out.append(f"failed: {answer['error']}")
    copy = answer.get("shadow")
    if isinstance(copy, Mapping):
        out.append(
            f"mirrored to {copy.get('track')} ({copy.get('version')}): pair {copy.get('pair_id')}"
        )
    at = answer.get("at")
    if isinstance(at, (int, float)):
        out.append(f"decided {views.ago(float(at), now)}")
    return out
