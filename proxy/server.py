"""Serving the application: listen, then drain on SIGTERM.

Draining: ``/readyz`` turns 503, the listener closes, keep-alive connections are closed after
their current response, and requests in flight (long streams included) get
``timeouts.drain`` seconds to finish before they are cut.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web

from proxy.app import HEALTH

log = logging.getLogger("splitgate.proxy")


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    header_timeout: float,
    drain_timeout: float,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    runner = web.AppRunner(
        app, handle_signals=False, **runner_options(header_timeout, drain_timeout)
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_port=reuse_port)
    await site.start()
    log.info("splitgate proxy listening on %s", _address(runner, host, port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        app[HEALTH].draining = True
        log.info("draining: waiting up to %.0f s for open requests", drain_timeout)
        await runner.cleanup()
        log.info("stopped")


def runner_options(header_timeout: float, drain_timeout: float) -> dict[str, Any]:
    """Server options of every proxy listener (tests use the same ones)."""
    return {
        "access_log": None,
        # aiohttp closes a connection that has not sent a complete request head within
        # keepalive_timeout, from accept or from the previous response: our header deadline.
        "keepalive_timeout": header_timeout,
        # A client that disconnects cancels its handler, which closes the upstream
        # connection, so the model stops generating for nobody.
        "handler_cancellation": True,
        "shutdown_timeout": drain_timeout,
    }


def _address(runner: web.AppRunner, host: str, port: int) -> str:
    addresses = runner.addresses
    if addresses:
        first = addresses[0]
        if isinstance(first, tuple):
            return f"{first[0]}:{first[1]}"
    return f"{host}:{port}"
