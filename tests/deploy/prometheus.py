"""A real Prometheus (Debian's ``prometheus`` package) for the tests, and the queries they check.

``PrometheusServer`` writes its own config into a temporary directory, listens on a free
127.0.0.1 port, scrapes the given targets every second and is stopped by its PID. The binaries
are required, never skipped: tests/system-deps.sh installs them, as CI does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from splitgate.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "splitgate.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"

VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "${datasource}": "", "$route": ".*"}
"""Grafana's variables, as concrete values a query can be sent with."""


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; fails the test, saying how to get it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} not found: install Debian's prometheus package (apt-get install prometheus; "
            "tests/system-deps.sh does it, as CI does)"
        )
    return found


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def dashboard_queries() -> list[tuple[str, str, set[str]]]:
    """``(panel title, expr, labels its legend names)`` of every target of the dashboard."""
    model = json.loads(DASHBOARD.read_text())
    out = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            out.append((panel["title"], substitute(target["expr"]), legend))
    return out


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        rules.extend(group["rules"])
    return rules


MODE_FAMILIES = (
    "splitgate_requests_total",
    "splitgate_request_errors_total",
    "splitgate_client_disconnects_total",
    "splitgate_tokens_total",
    "splitgate_request_duration_seconds",
    "splitgate_time_to_first_byte_seconds",
)
"""The per-track families with a ``mode`` label (``live``, or ``shadow`` for mirrored copies)."""

SELECTOR = re.compile(r"\b(splitgate_\w+)(\{[^}]*\})?")
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")


def selectors(expr: str) -> list[tuple[str, str]]:
    """Each metric an expression reads, and the selector as written (matchers included)."""
    return [(m.group(1), m.group(0)) for m in SELECTOR.finditer(expr)]


def grouping_labels(expr: str) -> set[str]:
    """The labels an expression aggregates or matches on: each metric it reads must carry them."""
    return {
        label.strip()
        for clause in GROUPING.findall(expr)
        for label in clause.split(",")
        if label.strip()
    }


class PrometheusServer:
    """One ``prometheus`` process this test started, scraping ``jobs`` (name → host:port)."""

    def __init__(self, jobs: dict[str, list[str]], rule_files: list[Path]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="splitgate-prometheus-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        }
        self._config = Path(self._dir.name) / "prometheus.yml"
        self._config.write_text(yaml.safe_dump(config))
        self._log = Path(self._dir.name) / "prometheus.log"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, within_s: float = 30) -> None:
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                binary("prometheus"),
                f"--config.file={self._config}",
                f"--storage.tsdb.path={Path(self._dir.name) / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        async with asyncio.timeout(within_s), aiohttp.ClientSession() as session:
            while self._process.returncode is None:
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"{self.url}/-/ready") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"prometheus exited with {self._process.returncode}:\n{self.log()}")

    def log(self) -> str:
        return self._log.read_text(errors="replace")[-4000:]

    async def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful answer of the HTTP API; fails with the error otherwise."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/{path}", params=params) as r,
        ):
            body = await r.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The series an instant query returns now."""
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        result: list[dict[str, Any]] = data["result"]
        return result

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._dir.cleanup()
