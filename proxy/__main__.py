"""``python -m proxy`` / ``splitgate proxy``: run the data plane, alone or as N workers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import uvloop

from config.loader import ConfigError
from proxy.server import WorkerRole, run, run_worker
from proxy.settings import ProxyProcess, from_args
from proxy.supervisor import Supervisor, check_free


def main(argv: Sequence[str] | None = None) -> int:
    try:
        process = from_args(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        # One line per problem, each naming its flag, variable or file: a usage error, exit 2.
        for problem in exc.problems:
            print(f"splitgate proxy: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=process.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if process.workers > 1:
        return supervise(process)
    try:
        uvloop.run(run(process))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        return cannot_listen(process, exc)
    return 0


def supervise(process: ProxyProcess) -> int:
    """Serve with ``process.workers`` spawned worker processes sharing the port."""
    try:
        check_free(process.host, process.port)
        if process.ops is not None:
            check_free(*process.ops)
    except OSError as exc:
        return cannot_listen(process, exc)
    if sys.platform != "linux":
        logging.getLogger("splitgate.proxy").warning(
            "outside Linux the kernel may not spread connections evenly over SO_REUSEPORT workers"
        )
    # One key for all workers: feedback may reach another worker than the one that signed the id.
    shared = replace(process, signing_key=process.signing_key or os.urandom(32))
    # Spawned, not forked: each worker starts a fresh interpreter and builds its own loop.
    context = multiprocessing.get_context("spawn")
    # Each worker's metrics snapshot, so that a scrape of any of them answers for all.
    metrics_dir = tempfile.mkdtemp(prefix="splitgate-metrics-")

    def start_worker(index: int) -> tuple[BaseProcess, Connection]:
        link, worker_end = context.Pipe()
        worker = context.Process(
            target=run_worker,
            args=(
                # Each worker acks in Redis under its own name: the control plane waits for all.
                replace(shared, instance=f"{process.instance}-w{index}"),
                WorkerRole(index, process.workers, metrics_dir),
                worker_end,
            ),
            name=f"splitgate-proxy-w{index}",
            daemon=True,
        )
        worker.start()
        worker_end.close()
        return worker, link

    supervisor = Supervisor(
        process.workers,
        start_worker,
        listen=f"{process.host}:{process.port}",
        stop_grace_s=process.config.proxy.timeouts.drain + 10,
    )
    try:
        return supervisor.run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def cannot_listen(process: ProxyProcess, exc: OSError) -> int:
    print(
        f"splitgate proxy: cannot listen on {process.host}:{process.port}: {exc.strerror or exc}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
