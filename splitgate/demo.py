"""``splitgate demo``: the proxy in front of two fake LLM backends, all on this machine.

The stable track (v1.0.0) listens on 127.0.0.1:9001, the canary (v1.1.0) on :9002, and the
proxy on 127.0.0.1:8080 with ``config/examples/routes.yaml`` (90/10, sticky on X-User-Id).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import resources

import uvloop

from config.loader import ConfigError, load_config
from loadtests.fake_llm import Behaviour, FakeLLM
from loadtests.fake_llm import serve as serve_fake
from proxy.app import ProxyApp
from proxy.server import serve
from proxy.settings import parse_listen

EXAMPLES = resources.files("config") / "examples"

TRY = """
splitgate demo: proxy on http://{listen}  (stable v1.0.0 on :9001, canary v1.1.0 on :9002, 90/10)
Try:
  curl -si http://{listen}/v1/chat/completions -H 'x-user-id: alice' \\
       -d '{{"model":"demo","messages":[{{"role":"user","content":"hi"}}]}}' | grep -i x-splitgate
  for u in $(seq 1 200); do curl -si http://{listen}/v1/models -H "x-user-id: user$u" \\
       | grep -i '^x-splitgate-track'; done | sort | uniq -c
Ctrl-C stops it.
"""


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="splitgate demo", description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT for the proxy")
    args = p.parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        config = load_config(str(EXAMPLES / "routes.yaml"))
    except ConfigError as exc:
        print(f"splitgate demo: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        fakes = [
            await serve_fake(FakeLLM("v1.0.0", "stable", Behaviour(tps=20)), "127.0.0.1", 9001),
            await serve_fake(FakeLLM("v1.1.0", "canary", Behaviour(tps=20)), "127.0.0.1", 9002),
        ]
        print(TRY.format(listen=f"{host}:{port}"), flush=True)
        try:
            await serve(ProxyApp(config), host, port)
        finally:
            for runner in fakes:
                await runner.cleanup()

    try:
        uvloop.run(run())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"splitgate demo: cannot listen: {exc.strerror or exc} (is another demo running?)",
            file=sys.stderr,
        )
        return 1
    return 0
