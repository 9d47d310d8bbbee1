"""``--workers N``: a supervisor that keeps N worker processes serving one port.

The supervisor binds nothing: it starts N spawned workers (``proxy.server.run_worker``), each
a whole single proxy listening on the same address with SO_REUSEPORT, so the kernel spreads
connections over them. It forwards SIGTERM/SIGINT, restarts a worker that dies (a bounded
number of times), and exits non-zero when a worker cannot start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

log = logging.getLogger("splitgate.proxy")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RestartBudget:
    """At most ``limit`` restarts within any ``window_s`` seconds."""

    def __init__(
        self, limit: int = 5, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._recent: deque[float] = deque()

    def spend(self) -> bool:
        """Take one restart if the budget allows it."""
        now = self._clock()
        while self._recent and now - self._recent[0] >= self.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.limit:
            return False
        self._recent.append(now)
        return True


StartWorker = Callable[[int], tuple[BaseProcess, Connection]]
"""Start worker ``index``; return the process and the supervisor's end of its pipe."""


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    link: Connection
    """Open while the worker lives: closing it (or dying) tells the worker to drain."""
    listen_by: float | None
    """Killed if not listening by then (None: no longer waited for)."""
    listening: bool = False


class Supervisor:
    """Keep ``count`` workers running until a signal; run in the main thread, binds nothing.

    A worker that exits (or is not listening within ``start_timeout_s``, and is killed) at
    start-up fails the whole start (exit 1). One that dies later is restarted, within
    ``budget``; past it every worker is stopped (exit 1).
    SIGTERM or SIGINT is forwarded as SIGTERM (each worker drains); a second signal, or a
    drain still running after ``stop_grace_s``, ends the workers with SIGKILL. Exit 0 when
    every worker stopped cleanly after a signal.
    """

    def __init__(
        self,
        count: int,
        start_worker: StartWorker,
        *,
        listen: str,
        budget: RestartBudget | None = None,
        start_timeout_s: float = 60.0,
        stop_grace_s: float = 40.0,
    ) -> None:
        self._count = count
        self._start_worker = start_worker
        self._listen = listen
        self._budget = budget or RestartBudget()
        self._start_timeout_s = start_timeout_s
        self._stop_grace_s = stop_grace_s
        self._workers: dict[int, _Worker] = {}
        self._started = False
        self._stop_at: float | None = None
        self._code = 0

    def run(self) -> int:
        wake, wake_in = socket.socketpair()
        wake.setblocking(False)
        wake_in.setblocking(False)
        # The handlers only wake the loop below (through the fd); all decisions happen there.
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in SIGNALS}
        previous_fd = signal.set_wakeup_fd(wake_in.fileno(), warn_on_full_buffer=False)
        try:
            for index in range(1, self._count + 1):
                self._spawn(index)
            self._supervise(wake)
        finally:
            self._kill_all()
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake.close()
            wake_in.close()
        return self._code

    def _spawn(self, index: int) -> None:
        process, link = self._start_worker(index)
        listen_by = time.monotonic() + self._start_timeout_s
        self._workers[index] = _Worker(index, process, link, listen_by)

    def _supervise(self, wake: socket.socket) -> None:
        while self._workers:
            waiting: list[Connection | socket.socket | int] = [wake]
            deadlines = [] if self._stop_at is None else [self._stop_at]
            for w in self._workers.values():
                waiting.append(w.process.sentinel)
                if not w.listening:
                    waiting.append(w.link)
                    if w.listen_by is not None and self._stop_at is None:
                        deadlines.append(w.listen_by)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = connection.wait(waiting, timeout)
            if wake in ready:
                self._on_signals(wake)
            for w in list(self._workers.values()):
                if not w.listening and w.link in ready:
                    self._on_listening(w)
                if w.process.sentinel in ready:
                    self._on_exit(w)
            self._check_deadlines()

    def _on_signals(self, wake: socket.socket) -> None:
        received = b""
        with contextlib.suppress(BlockingIOError):
            received = wake.recv(64)
        for number in received:
            if self._stop_at is None:
                name = signal.Signals(number).name
                log.info("%s: stopping %d workers (each drains)", name, len(self._workers))
                self._stop(0)
            else:
                log.warning("second signal: cutting the drain of %d workers", len(self._workers))
                self._kill_all()

    def _on_listening(self, w: _Worker) -> None:
        try:
            w.link.recv()
        except EOFError:
            return  # it died first: its sentinel says so too
        w.listening = True
        if self._started:
            log.info("worker %d (pid %s) listening again", w.index, w.process.pid)
        elif all(x.listening for x in self._workers.values()):
            self._started = True
            log.info("%d workers serving on %s", self._count, self._listen)

    def _on_exit(self, w: _Worker) -> None:
        w.process.join()
        code, pid = w.process.exitcode, w.process.pid
        how = _exit_reason(code)
        w.process.close()
        w.link.close()
        del self._workers[w.index]
        if self._stop_at is not None:
            # SIGTERM kills a worker that had not yet set its handlers: it had nothing to drain.
            if code not in (0, -signal.SIGTERM):
                log.warning("worker %d (pid %s) %s", w.index, pid, how)
                self._code = self._code or 1
        elif not self._started:
            log.error("worker %d (pid %s) failed to start: %s", w.index, pid, how)
            self._stop(1)
        elif self._budget.spend():
            log.warning(
                "worker %d (pid %s) %s: restarting it (at most %d restarts in %.0f s)",
                w.index,
                pid,
                how,
                self._budget.limit,
                self._budget.window_s,
            )
            self._spawn(w.index)
        else:
            log.error(
                "worker %d (pid %s) %s: more than %d restarts in %.0f s, stopping every worker",
                w.index,
                pid,
                how,
                self._budget.limit,
                self._budget.window_s,
            )
            self._stop(1)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        if self._stop_at is not None:
            if now >= self._stop_at and self._workers:
                log.warning(
                    "%d workers still running %.0f s after the stop: killing them",
                    len(self._workers),
                    self._stop_grace_s,
                )
                self._kill_all()
            return
        late = [
            w
            for w in self._workers.values()
            if not w.listening and w.listen_by is not None and now >= w.listen_by
        ]
        for w in late:
            log.error(
                "worker %d (pid %s) not listening after %.0f s: killing it",
                w.index,
                w.process.pid,
                self._start_timeout_s,
            )
            w.listen_by = None  # its exit decides what follows
            _signal(w.process, signal.SIGKILL)

    def _stop(self, code: int) -> None:
        self._code = self._code or code
        self._stop_at = time.monotonic() + self._stop_grace_s
        for w in self._workers.values():
            _signal(w.process, signal.SIGTERM)

    def _kill_all(self) -> None:
        for w in self._workers.values():
            _signal(w.process, signal.SIGKILL)


def _signal(process: BaseProcess, sig: signal.Signals) -> None:
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):  # already exited, not yet reaped
            os.kill(process.pid, sig)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def check_free(host: str, port: int) -> None:
    """Raise ``OSError`` unless a socket that does not share the port can bind ``host:port``.

    Workers bind with SO_REUSEPORT, which would silently join another listener of the same
    user that also set it (a second splitgate, say) and split its traffic; a plain bind fails.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    with contextlib.ExitStack() as sockets:
        for family, kind, proto, _, addr in {(i[0], i[1], i[2], "", i[4]) for i in infos}:
            sock = sockets.enter_context(socket.socket(family, kind, proto))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio binds
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
