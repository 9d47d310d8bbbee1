"""``splitgate demo``: the whole system on this machine, in one process.

A private redis-server (unless ``--redis-url`` names one), the control plane's admin API on
127.0.0.1:8081, the proxy on 127.0.0.1:8080 following Redis, and three fake LLM backends:
stable v1.0.0 on :9001 and canary v1.1.0 on :9002, split 90/10 by ``config/examples/routes.yaml``,
and v1.2.0 on :9003, which fails a quarter of its requests (for a rollout to roll back).
Every weight change, rollout event and flag change is printed as it happens
(``splitgate.demo_feed``); with ``--load`` the demo also sends itself traffic
(``splitgate.demo_load``), so that rollouts have requests to judge.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shlex
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import uvloop
from aiohttp import web

from config.keys import Keys
from config.listen import parse_listen
from config.loader import ConfigError, load_config
from config.schema import SplitgateConfig
from config.tasks import stop as stop_task
from control.__main__ import serve as serve_control
from control.app import ControlApp
from control.redis_client import connect
from loadtests.fake_llm import Behaviour, FakeLLM
from loadtests.fake_llm import serve as serve_fake
from proxy.app import Follow, ProxyApp
from proxy.server import start as start_proxy
from splitgate.demo_feed import Feed
from splitgate.demo_load import LoadGenerator, LoadSettings
from splitgate.redis_server import RedisServer

EXAMPLES = resources.files("config") / "examples"
DEFAULT_PORTS = (9001, 9002, 9003)
BAD_ERROR_RATE = 0.25
PLANS = ("demo-canary.yaml", "demo-bad-canary.yaml")
QUIET = ("splitgate.control.rollouts", "splitgate.proxy.watcher", "aiohttp.access")
"""Loggers whose INFO lines the feed already says in one line each."""


@dataclass(frozen=True)
class Backend:
    name: str
    version: str
    error_rate: float = 0.0


BACKENDS = (
    Backend("stable", "v1.0.0"),
    Backend("canary", "v1.1.0"),
    Backend("bad", "v1.2.0", BAD_ERROR_RATE),
)


@dataclass(frozen=True)
class Options:
    listen: tuple[str, int]
    admin: tuple[str, int]
    ports: tuple[int, ...]
    load: float | None
    plans: tuple[Path, ...]
    command: str


TRY = """
splitgate demo is running:
  proxy       http://{proxy}   route chat: stable v1.0.0 90 %, canary v1.1.0 10 %
  backends    stable v1.0.0 on :{p0}, canary v1.1.0 on :{p1}, v1.2.0 on :{p2} (fails {bad:.0%} of requests)
  admin API   http://{admin}   token: {token}
  dashboard   http://{admin}/ui/   (open it in a browser and type the token to sign in)
  redis       {redis}
  load        {load}

Try, in another shell (no virtualenv to activate: the commands below name it):
  export SPLITGATE_ADMIN_URL=http://{admin} SPLITGATE_ADMIN_TOKEN={token}
  curl -si http://{proxy}/v1/chat/completions -H 'x-user-id: alice' \\
       -d '{{"model":"demo","messages":[{{"role":"user","content":"hi"}}]}}' | grep -i x-splitgate
  {cmd} weights set chat stable=75 canary=25 --reason "try it"

  # a canary of v1.1.0: 20 %, 50 %, then 100 % once you approve it (about 2 minutes)
  {cmd} rollout start {good} --wait
  {cmd} rollout approve chat-XXXXXXXX        # in a third shell: the id printed by start
  # then a v1.2.0 that fails {bad:.0%} of its requests: rolled back within a minute
  {cmd} rollout start {bad_plan} --wait
{note}
Every weight change, rollout event and flag change is printed below as it happens.
Ctrl-C stops it.
"""

NO_LOAD = "none: rollouts need traffic to judge; restart with --load (20 requests/s)"
NEED_LOAD = "\n  (a rollout waits for traffic: start the demo with --load, or send your own)\n"


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    try:
        listen, admin = parse_listen(args.listen), parse_listen(args.admin_listen)
        ports = parse_ports(args.backend_ports)
        config = with_ports(load_config(str(EXAMPLES / "routes.yaml")), ports)
        if args.load is not None:
            LoadSettings(rps=args.load)  # refuse a bad rate before anything starts
    except (ConfigError, ValueError) as exc:
        print(f"splitgate demo: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    token = os.environ.get("SPLITGATE_ADMIN_TOKEN") or secrets.token_urlsafe(24)
    private: RedisServer | None = None
    redis_url = args.redis_url
    try:
        with tempfile.TemporaryDirectory(prefix="splitgate-demo-") as tmp:
            plans = plan_files(ports, Path(tmp))
            options = Options(listen, admin, ports, args.load, plans, splitgate_command())
            if redis_url is None:
                private = RedisServer()
                redis_url = private.start()
            uvloop.run(run(config, redis_url, token, options))
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="splitgate demo",
        description=(
            "The whole system on this machine: a private Redis, the control plane, the proxy "
            "and three fake LLM backends (stable v1.0.0, canary v1.1.0, and v1.2.0, which "
            "fails a quarter of its requests). Every weight change, rollout event and flag "
            "change is printed as it happens; with --load the demo sends itself traffic, so "
            "rollouts have requests to judge. Walkthrough: docs/DEMO.md."
        ),
    )
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT for the proxy")
    p.add_argument("--admin-listen", default="127.0.0.1:8081", help="HOST:PORT for the admin API")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("SPLITGATE_REDIS_URL"),
        help="use this Redis instead of a private one",
    )
    p.add_argument(
        "--load",
        nargs="?",
        type=float,
        const=20.0,
        default=None,
        metavar="RPS",
        help="send the proxy chat completions from sticky users, RPS a second (default 20)",
    )
    p.add_argument(
        "--backend-ports",
        default=",".join(map(str, DEFAULT_PORTS)),
        metavar="STABLE,CANARY,BAD",
        help="loopback ports of the three fake backends (default 9001,9002,9003)",
    )
    return p


def parse_ports(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(part) for part in text.split(","))
    except ValueError:
        ports = ()
    if len(ports) != len(BACKENDS) or not all(0 < p < 65536 for p in ports):
        raise ValueError(f"--backend-ports: three ports, e.g. 9001,9002,9003 (not {text!r})")
    if len(set(ports)) != len(ports):
        raise ValueError(f"--backend-ports: three different ports (not {text!r})")
    return ports


def _moved(text: str, ports: Sequence[int]) -> str:
    """``text`` with the default backend addresses moved to ``ports``."""
    for default, port in zip(DEFAULT_PORTS, ports, strict=True):
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
    return text


def with_ports(config: SplitgateConfig, ports: Sequence[int]) -> SplitgateConfig:
    """The example routing with its upstreams on the demo's backend ports."""
    routes = [
        route.model_copy(
            update={
                "tracks": [
                    t.model_copy(update={"upstreams": [_moved(u, ports) for u in t.upstreams]})
                    for t in route.tracks
                ]
            }
        )
        for route in config.routes
    ]
    return config.model_copy(update={"routes": routes})


def plan_files(ports: Sequence[int], tmp: Path) -> tuple[Path, ...]:
    """The demo's plans: the packaged files, or copies pointing at non-default ports."""
    packaged = [Path(str(EXAMPLES / "plans" / name)) for name in PLANS]
    if tuple(ports) == DEFAULT_PORTS:
        return tuple(packaged)
    copies = []
    for path in packaged:
        copy = tmp / path.name
        copy.write_text(_moved(path.read_text(encoding="utf-8"), ports), encoding="utf-8")
        copies.append(copy)
    return tuple(copies)


def splitgate_command() -> str:
    """How to run splitgate from any shell: this console script's absolute path, or this
    interpreter with ``-m splitgate`` (``python -m splitgate demo``)."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "splitgate" and script.is_file():
        return shlex.quote(str(script.resolve()))
    return f"{shlex.quote(sys.executable)} -m splitgate"


def banner(options: Options, token: str, redis_url: str) -> str:
    load = NO_LOAD
    if options.load is not None:
        load = f"{options.load:g} requests/s from sticky users, half of them streamed"
    return TRY.format(
        proxy=f"{options.listen[0]}:{options.listen[1]}",
        admin=f"{options.admin[0]}:{options.admin[1]}",
        p0=options.ports[0],
        p1=options.ports[1],
        p2=options.ports[2],
        bad=BAD_ERROR_RATE,
        token=token,
        redis=redis_url,
        load=load,
        cmd=options.command,
        good=shlex.quote(str(options.plans[0])),
        bad_plan=shlex.quote(str(options.plans[1])),
        note="" if options.load is not None else NEED_LOAD,
    )


async def start_backends(ports: Sequence[int]) -> list[web.BaseRunner]:
    runners: list[web.BaseRunner] = []
    try:
        for backend, port in zip(BACKENDS, ports, strict=True):
            how = Behaviour(tps=20, error_rate=backend.error_rate, health_ok=True)
            fake = FakeLLM(backend.version, backend.name, how)
            runners.append(await serve_fake(fake, "127.0.0.1", port))
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return runners


async def run(config: SplitgateConfig, redis_url: str, token: str, options: Options) -> None:
    runners: list[web.BaseRunner] = await start_backends(options.ports)
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
    feed_redis = connect(redis_url)
    tasks: list[asyncio.Task[None]] = []
    try:
        runners.append(await serve_control(control, *options.admin))
        await proxy.start()
        runners.append(await start_proxy(proxy, *options.listen))
        print(banner(options, token, redis_url), flush=True)
        tasks.append(asyncio.create_task(Feed(feed_redis, Keys(), out=say).run()))
        if options.load is not None:
            host, port = options.listen
            load = LoadGenerator(f"http://{host}:{port}", LoadSettings(rps=options.load), out=say)
            tasks.append(asyncio.create_task(load.run()))
        await until_stopped()
    finally:
        await stop_tasks(tasks)
        for runner in reversed(runners):
            await runner.cleanup()
        await proxy.close()
        await control.close()
        await feed_redis.aclose()


def say(line: str) -> None:
    print(line, flush=True)


async def until_stopped() -> None:
    """Until SIGINT (Ctrl-C) or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def stop_tasks(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the load and the feed, and wait for each to finish its cleanup (the
    cancellation repeated, as the control plane's loops are stopped: ``control.app.stop``)."""
    for task in reversed(tasks):
        await stop_task(task)
