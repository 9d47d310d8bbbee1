"""Serving a ``ProxyApp``: listen, then drain on SIGTERM.

Draining: ``/readyz`` turns 503, the listener closes, keep-alive connections are closed after
their current response, and requests in flight (long streams included) get
``timeouts.drain`` seconds to finish before they are cut.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from proxy.app import ProxyApp

log = logging.getLogger("splitgate.proxy")


async def start(
    proxy: ProxyApp, host: str, port: int, *, reuse_port: bool = False
) -> web.ServerRunner:
    """Start listening (``port=0`` picks a free port: see ``runner.addresses``)."""
    timeouts = proxy.config.proxy.timeouts
    server = web.Server(
        proxy.handle,
        # A client that disconnects cancels its handler, which closes the upstream
        # connection, so the model stops generating for nobody.
        handler_cancellation=True,
        access_log=None,
        # aiohttp closes a connection that has not sent a complete request head within
        # keepalive_timeout, from accept or from the previous response: our header deadline.
        keepalive_timeout=timeouts.client_header,
    )
    runner = web.ServerRunner(server, shutdown_timeout=timeouts.drain)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_port=reuse_port)
    await site.start()
    return runner


async def serve(proxy: ProxyApp, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Join Redis if configured, serve until SIGTERM or SIGINT, then drain and close."""
    await proxy.start()
    runner = await start(proxy, host, port, reuse_port=reuse_port)
    log.info("splitgate proxy listening on %s", address(runner))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        proxy.health.draining = True
        log.info(
            "draining: waiting up to %.0f s for open requests", proxy.config.proxy.timeouts.drain
        )
        await runner.cleanup()
        await proxy.close()
        log.info("stopped")


def address(runner: web.BaseRunner) -> str:
    """``host:port`` of the first listening socket."""
    host, port = runner.addresses[0][:2]
    return f"{host}:{port}"
