"""``python -m control`` / ``splitgate control``: run the admin API and the seed guardian."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

import uvloop
from aiohttp import web

from config.keys import Keys
from config.loader import ConfigError
from control.app import ControlApp
from control.redis_client import connect
from control.settings import ControlProcess, from_args

log = logging.getLogger("splitgate.control")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        process = from_args(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        # One line per problem, each naming its flag, variable or file: a usage error, exit 2.
        for problem in exc.problems:
            print(f"splitgate control: {problem}", file=sys.stderr)
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
            f"splitgate control: cannot listen on {process.host}:{process.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


async def serve(control: ControlApp, host: str, port: int) -> web.AppRunner:
    await control.start()
    runner = web.AppRunner(control.web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    host_, port_ = runner.addresses[0][:2]
    log.info("splitgate control plane: admin API on %s:%s", host_, port_)
    return runner


async def run(process: ControlProcess) -> None:
    control = ControlApp(
        connect(process.redis_url),
        Keys(process.namespace),
        process.seed,
        process.token,
        signing_key=process.signing_key,
        rollout_interval_s=process.rollout_interval_s,
        instance=process.instance,
        lease_s=process.lease_s,
        environments=process.environments,
        webhooks=process.webhooks,
        webhook_secret=process.webhook_secret,
        retention_s=process.retention_s,
    )
    runner = await serve(control, process.host, process.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await control.close()


if __name__ == "__main__":
    sys.exit(main())
