"""``splitgate demo``: the whole system on this machine, in one process.

A private redis-server (unless ``--redis-url`` names one), the control plane's admin API on
127.0.0.1:8081, the proxy on 127.0.0.1:8080 following Redis, and two fake LLM backends:
stable v1.0.0 on :9001 and canary v1.1.0 on :9002, split 90/10 by ``config/examples/routes.yaml``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from importlib import resources

import uvloop
from aiohttp import web

from config.keys import Keys
from config.listen import parse_listen
from config.loader import ConfigError, load_config
from config.schema import SplitgateConfig
from control.__main__ import serve as serve_control
from control.app import ControlApp
from control.redis_client import connect
from loadtests.fake_llm import Behaviour, FakeLLM
from loadtests.fake_llm import serve as serve_fake
from proxy.app import Follow, ProxyApp
from proxy.server import start as start_proxy
from splitgate.redis_server import RedisServer

EXAMPLES = resources.files("config") / "examples"

TRY = """
splitgate demo is running:
  proxy       http://{proxy}     (stable v1.0.0 on :9001, canary v1.1.0 on :9002, 90/10)
  admin API   http://{admin}     token: {token}
  redis       {redis}

Try, in another shell:
  curl -si http://{proxy}/v1/chat/completions -H 'x-user-id: alice' \\
       -d '{{"model":"demo","messages":[{{"role":"user","content":"hi"}}]}}' | grep -i x-splitgate
  for u in $(seq 1 200); do curl -si http://{proxy}/v1/models -H "x-user-id: user$u" \\
       | grep -i '^x-splitgate-track'; done | sort | uniq -c
  export SPLITGATE_ADMIN_URL=http://{admin} SPLITGATE_ADMIN_TOKEN={token}
  splitgate weights set chat stable=75 canary=25 --reason "try it"
  splitgate weights get chat
Ctrl-C stops it.
"""


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="splitgate demo", description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT for the proxy")
    p.add_argument("--admin-listen", default="127.0.0.1:8081", help="HOST:PORT for the admin API")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("SPLITGATE_REDIS_URL"),
        help="use this Redis instead of a private one",
    )
    args = p.parse_args(argv)
    try:
        listen, admin = parse_listen(args.listen), parse_listen(args.admin_listen)
        config = load_config(str(EXAMPLES / "routes.yaml"))
    except (ConfigError, ValueError) as exc:
        print(f"splitgate demo: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get("SPLITGATE_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    private: RedisServer | None = None
    redis_url = args.redis_url
    try:
        if redis_url is None:
            private = RedisServer()
            redis_url = private.start()
        uvloop.run(run(config, redis_url, token, listen, admin))
    except FileNotFoundError as exc:
        print(f"splitgate demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"splitgate demo: cannot listen: {exc.strerror or exc} (is another demo running?)",
            file=sys.stderr,
        )
        return 1
    finally:
        if private is not None:
            private.stop()
    return 0


async def run(
    config: SplitgateConfig,
    redis_url: str,
    token: str,
    listen: tuple[str, int],
    admin: tuple[str, int],
) -> None:
    runners: list[web.BaseRunner] = [
        await serve_fake(FakeLLM("v1.0.0", "stable", Behaviour(tps=20)), "127.0.0.1", 9001),
        await serve_fake(FakeLLM("v1.1.0", "canary", Behaviour(tps=20)), "127.0.0.1", 9002),
    ]
    signing_key = os.urandom(32)
    control = ControlApp(
        connect(redis_url),
        Keys(),
        config.document(),
        token,
        signing_key=signing_key,
        rollout_interval_s=2.0,
    )
    proxy = ProxyApp(config, follow=Follow(redis_url, "demo-proxy"), signing_key=signing_key)
    try:
        runners.append(await serve_control(control, *admin))
        await proxy.start()
        runners.append(await start_proxy(proxy, *listen))
        print(
            TRY.format(
                proxy=f"{listen[0]}:{listen[1]}",
                admin=f"{admin[0]}:{admin[1]}",
                token=token,
                redis=redis_url,
            ),
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await proxy.close()
        await control.close()
