"""``splitgate probe``: is the splitgate in this container ready? For a container's
HEALTHCHECK (the image's) or ``kubectl exec``: no curl or wget needed in the image.

It asks ``/readyz`` of each plane the environment says is listening here: the proxy's
operations address (``SPLITGATE_OPS_LISTEN``, else ``SPLITGATE_LISTEN``) and the control
plane's (``SPLITGATE_CONTROL_LISTEN``), each on loopback. Exit 0 when one answers 200, 1
otherwise, with one line saying what each answered.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

from config.listen import parse_listen

TIMEOUT_S = 2.0


def targets(env: Mapping[str, str]) -> list[str]:
    """The ``/readyz`` URLs to ask, by the addresses in ``env`` (unset: the defaults)."""
    proxy = env.get("SPLITGATE_OPS_LISTEN") or env.get("SPLITGATE_LISTEN") or "127.0.0.1:8080"
    control = env.get("SPLITGATE_CONTROL_LISTEN") or "127.0.0.1:8081"
    urls = []
    for address in (proxy, control):
        host, port = parse_listen(address)
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1" if host != "::" else "::1"
        urls.append(f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz")
    return urls


def ask(url: str) -> str | None:
    """None if ready, else what the address answered."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return None if answer.status == 200 else f"status {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"status {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no answer ({reason})"


def main(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> int:
    if argv:
        print("usage: splitgate probe  (no options: it reads the SPLITGATE_* addresses)")
        return 0 if argv[0] in ("-h", "--help") else 2
    try:
        urls = targets(os.environ if env is None else env)
    except ValueError as exc:
        print(f"splitgate probe: {exc}", file=sys.stderr)
        return 2
    answers = {url: ask(url) for url in urls}
    if any(answer is None for answer in answers.values()):
        return 0
    print("splitgate probe: not ready: " + "; ".join(f"{u}: {a}" for u, a in answers.items()))
    return 1
