"""``splitgate <command>``: dispatch to the plane that does the work.

This module only dispatches; it imports a plane when its command runs, so the data plane
and the control plane stay independent of each other (``splitgate proxy`` never imports
``control``). The admin API's commands are one argparse tree: ``control.cli``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

USAGE = """usage: splitgate <command> [options]

commands:
  proxy     run the data plane (the sticky weighted reverse proxy)
  control   run the control plane (the admin API over the routing document in Redis)
  weights   read or set a route's weights through the admin API
  rollout   start a rollout from a plan file, follow it, approve, promote, pause, resume, abort
  flags     feature flags: list, get, set, delete, explain, pause, resume, schedule
  top       each track's requests/s, errors, latency and tokens over the last minute, live
  request   the routing decision behind a request, by its X-Request-Id
  shadow    a route's shadow pairs: show the newest, export them for a judge (JSON Lines)
  demo      run everything on this machine: Redis, control plane, proxy, three fake LLM backends,
            and with --load its own traffic
  probe     exit 0 if the proxy or control plane here answers /readyz (a container's health
            check: it reads SPLITGATE_OPS_LISTEN or SPLITGATE_LISTEN, SPLITGATE_CONTROL_LISTEN)

'splitgate <command> --help' describes a command's options; 'splitgate --version' the version.
weights, rollout, flags, top, request and shadow take --admin-url (env SPLITGATE_ADMIN_URL, default
http://127.0.0.1:8081) and --token (env SPLITGATE_ADMIN_TOKEN).
"""
ADMIN_COMMANDS = ("weights", "rollout", "flags", "top", "request", "shadow")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        try:
            print(f"splitgate {version('splitgate')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("splitgate (not installed: no version)")
        return 0
    command, rest = args[0], args[1:]
    if command == "proxy":
        from proxy.__main__ import main as proxy_main

        return proxy_main(rest)
    if command == "control":
        from control.__main__ import main as control_main

        return control_main(rest)
    if command in ADMIN_COMMANDS:
        from control.cli import main as admin_main

        return admin_main([command, *rest])
    if command == "demo":
        from splitgate.demo import main as demo_main

        return demo_main(rest)
    if command == "probe":
        from splitgate.probe import main as probe_main

        return probe_main(rest)
    print(f"splitgate: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
