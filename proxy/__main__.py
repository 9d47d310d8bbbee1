"""``python -m proxy`` / ``splitgate proxy``: run the data plane."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import uvloop

from config.keys import Keys
from config.loader import ConfigError
from proxy.app import Follow, ProxyApp
from proxy.server import serve
from proxy.settings import ProxyProcess, from_args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        process = from_args(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"splitgate proxy: configuration error\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=process.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        uvloop.run(run(process))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"splitgate proxy: cannot listen on {process.host}:{process.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


async def run(process: ProxyProcess) -> None:
    logging.getLogger("splitgate.proxy").info(
        "routing from %s: %s",
        process.config_source,
        ", ".join(r.name for r in process.config.routes),
    )
    follow = None
    if process.redis_url is not None:
        follow = Follow(
            process.redis_url,
            process.instance,
            Keys(process.namespace),
            poll_s=process.poll_s,
            pubsub=process.pubsub,
        )
    proxy = ProxyApp(
        process.config,
        internal_secret=process.internal_secret,
        follow=follow,
        signing_key=process.signing_key,
    )
    await serve(proxy, process.host, process.port)


if __name__ == "__main__":
    sys.exit(main())
