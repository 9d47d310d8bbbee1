"""``splitgate <command>``: dispatch to the plane that does the work.

This module only dispatches; it imports a plane when its command runs, so the data plane
and the control plane stay independent of each other.
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
  demo      run everything on this machine: Redis, control plane, proxy, three fake LLM backends,
            and with --load its own traffic

'splitgate <command> --help' describes a command's options; 'splitgate --version' the version.
"""


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
    if command == "weights":
        from control.cli import main as weights_main

        return weights_main(rest)
    if command == "rollout":
        from control.rollout_cli import main as rollout_main

        return rollout_main(rest)
    if command == "flags":
        from control.flags_cli import main as flags_main

        return flags_main(rest)
    if command == "top":
        from control.top import main as top_main

        return top_main(rest)
    if command == "demo":
        from splitgate.demo import main as demo_main

        return demo_main(rest)
    print(f"splitgate: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
