"""Serving a ``ProxyApp``: listen, then drain on SIGTERM; or supervise worker processes.

Draining: ``/readyz`` turns 503, the listener closes, keep-alive connections are closed after
their current response, and requests in flight (long streams included) get
``timeouts.drain`` seconds to finish before they are cut.

With ``--workers N`` (N > 1) each worker process runs ``run_worker`` (its own uvloop loop,
``ProxyApp``, watcher and flusher); ``proxy.supervisor`` keeps them running.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from multiprocessing.connection import Connection

import uvloop
from aiohttp import web
from prometheus_client import Gauge

from config.keys import Keys
from proxy.app import Follow, ProxyApp
from proxy.settings import ProxyProcess
from proxy.supervisor import SIGNALS

log = logging.getLogger("splitgate.proxy")


@dataclass(frozen=True)
class WorkerRole:
    """This process is worker ``index`` (1-based) of ``count``."""

    index: int
    count: int
    metrics_dir: str | None = None
    """Where the workers keep their metrics snapshots (``proxy.worker_metrics``)."""


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


async def start_ops(
    proxy: ProxyApp, host: str, port: int, *, reuse_port: bool = False
) -> web.ServerRunner:
    """The operations listener: ``/metrics``, ``/healthz`` and ``/readyz`` alone."""
    server = web.Server(proxy.handle_ops, access_log=None, keepalive_timeout=30.0)
    runner = web.ServerRunner(server, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    return runner


async def serve(
    proxy: ProxyApp,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    supervisor: Connection | None = None,
    ops: tuple[str, int] | None = None,
) -> None:
    """Join Redis if configured, serve until SIGTERM or SIGINT, then drain and close.

    Alone, a second signal during the drain ends the process at once. As a worker,
    ``supervisor`` is this process's end of a pipe to its supervisor: the worker sends its pid
    there once listening, and drains when the other end closes (the supervisor is gone).
    A worker ignores repeated signals, since a process-group signal and the supervisor's
    forwarded one arrive together; the supervisor cuts a drain short with SIGKILL.
    """
    await proxy.start()
    if proxy.metrics.share is not None:
        proxy.metrics.share.start()
    ops_runner = None
    if ops is not None:
        proxy.ops_apart = True
        ops_runner = await start_ops(proxy, *ops, reuse_port=reuse_port)
        log.info("operations (/metrics, /healthz, /readyz) on %s", address(ops_runner))
    runner = await start(proxy, host, port, reuse_port=reuse_port)
    log.info("splitgate proxy listening on %s", address(runner))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if supervisor is not None:
        supervisor.send(os.getpid())
        _drain_when_closed(loop, supervisor, stop)
    try:
        await stop.wait()
    finally:
        if supervisor is None:
            _remove_handlers(loop)
        else:
            loop.remove_reader(supervisor.fileno())
        proxy.health.draining = True
        log.info(
            "draining: waiting up to %.0f s for open requests", proxy.config.proxy.timeouts.drain
        )
        await runner.cleanup()
        if ops_runner is not None:  # up through the drain: /readyz says so, scrapes go on
            await ops_runner.cleanup()
        if proxy.metrics.share is not None:
            await proxy.metrics.share.stop()
        await proxy.close()
        log.info("stopped")
        if supervisor is not None:
            _remove_handlers(loop)


def _remove_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for sig in SIGNALS:
        loop.remove_signal_handler(sig)


def _drain_when_closed(
    loop: asyncio.AbstractEventLoop, supervisor: Connection, stop: asyncio.Event
) -> None:
    # A supervisor killed with SIGKILL forwards nothing: without this its workers would keep
    # the port forever. It never writes to the pipe, so the end is readable only at EOF.
    def closed() -> None:
        loop.remove_reader(supervisor.fileno())
        if not stop.is_set():
            log.warning("the supervisor is gone: draining")
            stop.set()

    loop.add_reader(supervisor.fileno(), closed)


async def run(
    process: ProxyProcess, role: WorkerRole | None = None, supervisor: Connection | None = None
) -> None:
    """Build the proxy that ``process`` describes and serve it until a signal."""
    log.info(
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
    if role is not None:
        Gauge(
            "splitgate_worker_info",
            "One series per live worker process sharing the port (the figures of a scrape "
            "are the sum over them).",
            ["worker", "workers"],
            registry=proxy.metrics.registry,
        ).labels(str(role.index), str(role.count)).set(1)
        if role.metrics_dir is not None:
            from proxy.worker_metrics import WorkerShare

            proxy.metrics.share = WorkerShare(role.metrics_dir, role.index, proxy.metrics.registry)
    await serve(
        proxy,
        process.host,
        process.port,
        reuse_port=role is not None,
        supervisor=supervisor,
        ops=process.ops,
    )


def run_worker(process: ProxyProcess, role: WorkerRole, supervisor: Connection) -> None:
    """A worker process's entry point (spawned); ``supervisor`` as ``serve`` takes it."""
    logging.basicConfig(
        level=process.log_level,
        format=f"%(asctime)s %(levelname)s w{role.index} %(name)s: %(message)s",
    )
    try:
        uvloop.run(run(process, role, supervisor))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", process.host, process.port, exc.strerror or exc)
        raise SystemExit(1) from None
    finally:
        supervisor.close()


def address(runner: web.BaseRunner) -> str:
    """``host:port`` of the first listening socket."""
    host, port = runner.addresses[0][:2]
    return f"{host}:{port}"
