"""The image as far as this machine allows without Docker: the Dockerfile's build context
made into a wheel, installed into a clean virtual environment, and run with the image's ENV,
ENTRYPOINT and CMD (and its HEALTHCHECK), for both planes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from splitgate.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ROUTES = """
routes:
  - name: chat
    match: {path_prefix: /v1/}
    tracks:
      - {name: stable, version: v1, upstreams: ["http://127.0.0.1:9"], weight: 100}
"""


def instruction(name: str) -> list[str]:
    """Each ``NAME …`` line of the final stage, continuation lines joined."""
    final = DOCKERFILE.replace("\\\n", " ").split("\nFROM ")[-1]
    return [m.group(1).strip() for m in re.finditer(rf"^{name} (.+)$", final, re.M)]


def exec_form(name: str) -> list[str]:
    (line,) = instruction(name)
    argv: list[str] = json.loads(line[line.index("[") :])
    return argv


def image_env() -> dict[str, str]:
    (line,) = instruction("ENV")
    return dict(pair.split("=", 1) for pair in line.split())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a clean venv with the image's wheel installed."""
    work = tmp_path_factory.mktemp("image")
    context = work / "context"
    context.mkdir()
    build_stage = DOCKERFILE.split("\nFROM ")[0] + "\n" + DOCKERFILE.split("\nFROM ")[1]
    for source, _ in re.findall(r"^COPY (\S+) (\S+)$", build_stage, re.M):
        for name in source.split():
            path = ROOT / name
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(path, context / name, ignore=ignore)
            else:
                shutil.copy(path, context / name)
    for line in re.findall(r"^COPY (.+) \./$", build_stage, re.M):  # COPY a b ./
        for name in line.split():
            shutil.copy(ROOT / name, context / name)
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(context)],
        check=True,
        timeout=300,
    )
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = wheels.glob("splitgate-*.whl")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=600,
    )
    return venv / "bin"


def environment(bin_dir: Path, **changes: str) -> dict[str, str]:
    """The image's ENV with free ports, as the container would see it; nothing of ours."""
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(bin_dir.parent)}
    for name, value in image_env().items():
        if name.endswith("LISTEN"):
            host, _ = value.rsplit(":", 1)
            value = f"{host.replace('0.0.0.0', '127.0.0.1')}:{free_port()}"
        env[name] = value
    env.update(changes)
    return env


def run(bin_dir: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    """The image's ENTRYPOINT and CMD (or ``extra`` instead of CMD); its log goes to a file
    beside the venv (a pipe nobody reads could fill and stall it), to read when one fails."""
    argv = [*exec_form("ENTRYPOINT"), *(extra or exec_form("CMD"))]
    argv[0] = str(bin_dir / argv[0])
    with open(bin_dir.parent / "log.txt", "a", encoding="utf-8") as log:
        return subprocess.Popen(argv, env=env, stderr=log, text=True)


def ready(url: str, process: subprocess.Popen[str], deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert process.poll() is None, f"exited {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered 200")


def health_check(bin_dir: Path, env: dict[str, str]) -> int:
    argv = exec_form("HEALTHCHECK")
    argv[0] = str(bin_dir / argv[0])
    return subprocess.run(argv, env=env, timeout=30, capture_output=True).returncode


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_without_a_routing_file_the_proxy_says_what_to_mount(installed: Path) -> None:
    env = environment(installed)
    assert env["SPLITGATE_CONFIG"] == "/etc/splitgate/routes.yaml"
    env["SPLITGATE_CONFIG"] = str(installed.parent / "not-mounted.yaml")
    argv = [*exec_form("ENTRYPOINT"), *exec_form("CMD")]
    argv[0] = str(installed / argv[0])
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    err = done.stderr
    assert err.count("\n") == 1 and "no routing file there" in err and "mount it" in err


def test_the_proxy_serves_and_reports_healthy_with_a_routing_file_mounted(
    installed: Path, tmp_path: Path, stopped: list[subprocess.Popen[str]]
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    env = environment(installed, SPLITGATE_CONFIG=str(routes))
    process = run(installed, env)
    stopped.append(process)
    ops = env["SPLITGATE_OPS_LISTEN"]
    ready(f"http://{ops}/readyz", process)
    with urllib.request.urlopen(f"http://{ops}/metrics", timeout=5) as answer:
        assert b"splitgate_" in answer.read()
    assert health_check(installed, env) == 0
    process.send_signal(signal.SIGTERM)  # the image's STOPSIGNAL
    assert instruction("STOPSIGNAL") == ["SIGTERM"]
    assert process.wait(timeout=60) == 0
    assert health_check(installed, env) == 1  # nothing answers any more


def test_the_control_plane_runs_from_the_same_image(
    installed: Path, tmp_path: Path, stopped: list[subprocess.Popen[str]]
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    server = RedisServer()
    server.start()
    try:
        env = environment(
            installed,
            SPLITGATE_CONFIG=str(routes),
            SPLITGATE_REDIS_URL=server.url,
            SPLITGATE_ADMIN_TOKEN="image-test-token-0123456789",
        )
        process = run(installed, env, "control")
        stopped.append(process)
        ready(f"http://{env['SPLITGATE_CONTROL_LISTEN']}/readyz", process)
        assert health_check(installed, env) == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        server.stop()


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for name in (".git", ".venv", "tests", "bench", "deploy", "docs"):
        assert name in ignored
    assert os.path.basename(exec_form("ENTRYPOINT")[0]) == "splitgate"
