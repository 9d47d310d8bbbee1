"""The project's performance record: one command runs every benchmark and writes one table.

    python bench/record.py [--quick] [--out bench/results] [--harness DIR] [--skip STEP ...]

The steps run one after another on this machine, loopback only, each a subprocess bounded in
time (over its limit, the processes of its session are sent SIGTERM, then SIGKILL):

1. ``harness``: ``bench/run.sh``, the shared side-by-side harness (../shared/bench). direct,
   nginx, refproxy (a bare aiohttp pass-through) and splitgate alternate in one run, the order
   rotating each repetition, medians, the proxy pinned to CPU 1 and the load to CPU 0. From its
   JSON: requests/s per proxy core (1e6 ÷ CPU-µs per request), CPU-µs per request, added TTFB
   p50/p99 against direct for bursts of 200 concurrent streams, memory per held stream.
2. ``propagation``: ``bench/propagation.py``, a weight change reaching three replicas, with
   pub/sub and with polling alone.
3. ``workers``: ``bench/workers.py``, requests/s of ``--workers N`` for N = 1 to the CPUs.

Before each step the rest of the machine's busy CPU is sampled for a few seconds: on a shared
machine that is what moves the figures. ``record.json`` (every figure, the machine, the commit)
and ``record.md`` (the tables docs/PERFORMANCE.md carries) go to ``--out``, each step's output
to ``<step>.log`` beside them (the tables are drawn by ``bench/record_md.py``). A full run takes
about 11 minutes; ``--quick`` (2 to 3) checks that everything runs, too short to quote. Exit 1
if a step failed (the record is still written, with the failure in it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from record_md import PROXIES, STREAMS, render  # bench/record_md.py, beside this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HARNESS_PORTS = (18080, 18081, 19101, 19102, 19201, 19202)  # compare.py's, fixed: one run at a time


@dataclass(frozen=True)
class Profile:
    name: str
    harness: tuple[str, ...]
    propagation: tuple[str, ...]
    workers: tuple[str, ...]
    limits_s: dict[str, float]
    """Wall-clock limit per step; the harness's includes its first-use setup (apt, venv)."""
    sample_s: float


FULL = Profile(
    "full",
    harness=(
        *("--reps", "5", "--duration", "10", "--warmup", "2", "--bursts", "5"),
        *("--mem-streams", "1000", "--mem-pause", "10"),
    ),
    propagation=("--rounds", "200", "--poll-rounds", "20"),
    workers=("--reps", "5", "--duration", "5", "--warmup", "2"),
    limits_s={"harness": 1800, "propagation": 600, "workers": 600},
    sample_s=3,
)
QUICK = Profile(
    "quick",
    harness=(
        *("--reps", "1", "--duration", "3", "--warmup", "1", "--bursts", "2"),
        *("--mem-streams", "300", "--mem-pause", "3"),
    ),
    propagation=("--rounds", "30", "--poll-rounds", "3"),
    workers=("--reps", "1", "--duration", "3", "--warmup", "1"),
    limits_s={"harness": 900, "propagation": 180, "workers": 240},
    sample_s=2,
)


class StepFailed(Exception):
    pass


# Running steps.


def session_members(sid: int) -> list[int]:
    """Processes in session ``sid``: the step and every descendant that did not leave it."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                found.append(int(entry.name))
    return found


def end_session(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the step's session (the harness cleans up what it started), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        for pid in session_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def copy_lines(source: IO[bytes], log: IO[bytes]) -> None:
    for line in source:
        log.write(line)
        sys.stderr.buffer.write(line)
        sys.stderr.flush()


def run_step(argv: Sequence[str], limit_s: float, log_path: Path, env: dict[str, str]) -> None:
    """Run ``argv`` in a session of its own, its output both to ``log_path`` and to stderr."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        copier = threading.Thread(target=copy_lines, args=(process.stdout, log), daemon=True)
        copier.start()
        try:
            code = process.wait(limit_s)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"still running after {limit_s:.0f} s, stopped") from None
        finally:
            if process.poll() is None:
                end_session(process)
            copier.join(10)
    if code != 0:
        raise StepFailed(f"exit {code}, see {log_path}")


# The steps.


@dataclass(frozen=True)
class Run:
    profile: Profile
    out: Path
    harness_dir: str
    env: dict[str, str]

    def step(self, name: str, argv: Sequence[str]) -> None:
        run_step(argv, self.profile.limits_s[name], self.out / f"{name}.log", self.env)


def ports_in_use(ports: Sequence[int]) -> list[int]:
    taken = []
    for port in ports:
        with socket.socket() as probe:
            # As the harness's servers do: connections in TIME_WAIT do not block a listener.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    return taken


def harness(run: Run) -> dict[str, Any]:
    if taken := ports_in_use(HARNESS_PORTS):
        raise StepFailed(f"ports {taken} in use: another harness run? (bench/run.sh)")
    results = run.out / "harness"
    latest = results / "latest.json"
    latest.unlink(missing_ok=True)  # never read a previous run's figures
    argv = ["bash", str(HERE / "run.sh"), run.harness_dir, *run.profile.harness]
    run.step("harness", [*argv, "--streams", str(STREAMS), "--out", str(results)])
    return harness_figures(json.loads(latest.read_text(encoding="utf-8")))


def script_step(run: Run, name: str, args: Sequence[str]) -> dict[str, Any]:
    """Run ``bench/<name>.py`` with ``args`` and ``--json``; return what it wrote."""
    target = run.out / f"{name}.json"
    target.unlink(missing_ok=True)
    run.step(name, [sys.executable, str(HERE / f"{name}.py"), *args, "--json", str(target)])
    figures: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    return figures


def propagation(run: Run) -> dict[str, Any]:
    return script_step(run, "propagation", run.profile.propagation)


def workers(run: Run) -> dict[str, Any]:
    return script_step(run, "workers", run.profile.workers)


STEPS: dict[str, Callable[[Run], dict[str, Any]]] = {
    "harness": harness,
    "propagation": propagation,
    "workers": workers,
}


# Reading the harness's JSON (compare.py: "summary" per contender, "runs" per repetition).


def per_repetition(doc: dict[str, Any], name: str) -> dict[int, float]:
    """CPU-µs per request of ``name`` in each repetition that measured it."""
    return {
        run["rep"]: run["throughput"]["cpu_us_per_req"]
        for run in doc["runs"]
        if run["contender"] == name and run.get("throughput", {}).get("cpu_us_per_req")
    }


def proxy_figures(doc: dict[str, Any], name: str) -> dict[str, Any]:
    s = doc["summary"][name]
    cpu = s["T_cpu_us_per_req"]
    errors = [s["T_errors"], s["S_errors"], s["M_client_errors"]]
    return {
        "repetitions_ok": s["reps_ok"],
        "failures": s["errors"],
        "rps_per_core": round(1e6 / cpu) if cpu else None,
        "cpu_us_per_request": cpu,
        "cpu_us_per_request_each": list(per_repetition(doc, name).values()),
        "cpu_vs_nginx": 1.0 if name == "nginx" else s.get("cpu_ratio_vs_nginx"),
        "rps_pinned": s["T_rps"],
        "proxy_core_busy_pct": s["T_proxy_core_busy_pct"],
        "ttfb_ms": [s["S_ttfb_p50_ms"], s["S_ttfb_p99_ms"]],
        "added_ttfb_p50_ms": s["S_added_ttfb_p50_ms"],
        "added_ttfb_p99_ms": s["S_added_ttfb_p99_ms"],
        "cpu_ms_per_stream": s["S_cpu_ms_per_stream"],
        "kib_per_stream": s["M_kib_per_stream"],
        "streams_held": s["M_inflight_at"],
        "rss_idle_mib": s["M_rss_idle_mib"],
        "errors": None if None in errors else sum(errors),
        "green_pct": s["T_green_pct"],
        "sticky_pct": s["sticky_pct"],
    }


def harness_figures(doc: dict[str, Any]) -> dict[str, Any]:
    params = doc["meta"]["params"]
    if params["streams"] != STREAMS:
        raise StepFailed(f"the harness measured {params['streams']} streams, not {STREAMS}")
    direct = doc["summary"].get("direct", {})
    mine, base = per_repetition(doc, "splitgate"), per_repetition(doc, "refproxy")
    paired = [mine[rep] / base[rep] for rep in mine if rep in base]
    return {
        "params": {k: params[k] for k in ("reps", "duration", "warmup", "connections")}
        | {k: params[k] for k in ("streams", "chunks", "bursts", "mem_streams", "mem_pause")},
        "versions": doc["meta"]["versions"],
        "elapsed_s": doc["meta"]["elapsed_s"],
        "direct_ttfb_ms": [direct.get("S_ttfb_p50_ms"), direct.get("S_ttfb_p99_ms")],
        "proxies": {name: proxy_figures(doc, name) for name in PROXIES if name in doc["summary"]},
        "splitgate_vs_refproxy_cpu_each": [round(x, 3) for x in paired],
        "splitgate_vs_refproxy_cpu": round(statistics.median(paired), 3) if paired else None,
    }


# The machine.


def head_commit(root: Path) -> dict[str, str | None]:
    """The checked-out commit, read from .git's files: no git command runs, since others may be
    using the same work tree. Uncommitted changes in the tree are not seen."""
    git = root / ".git"
    if git.is_file():  # a linked worktree: "gitdir: PATH"
        git = (root / git.read_text().partition("gitdir:")[2].strip()).resolve()
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return {"commit": None, "ref": None}
    if not head.startswith("ref: "):
        return {"commit": head, "ref": None}
    ref = head.removeprefix("ref: ")
    common = git / "commondir"
    for base in (git, (git / common.read_text().strip()).resolve() if common.is_file() else git):
        if (base / ref).is_file():
            return {"commit": (base / ref).read_text().strip(), "ref": ref}
        packed = base / "packed-refs"
        lines = packed.read_text().splitlines() if packed.is_file() else []
        for sha, _, name in (line.partition(" ") for line in lines):
            if name == ref:
                return {"commit": sha, "ref": ref}
    return {"commit": None, "ref": ref}


def first_value(path: str, key: str, sep: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, found, value = line.partition(sep)
        if found and name.strip() == key:
            return value.strip().strip('"')
    return None


def machine() -> dict[str, Any]:
    memory = first_value("/proc/meminfo", "MemTotal", ":")
    return {
        "cpu_model": first_value("/proc/cpuinfo", "model name", ":"),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(int(memory.split()[0]) / 2**20, 1) if memory else None,
        "os": first_value("/etc/os-release", "PRETTY_NAME", "="),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": importlib.metadata.version("aiohttp"),
        "uvloop": importlib.metadata.version("uvloop"),
        **head_commit(ROOT),
    }


def cpu_times() -> tuple[int, int]:
    """(busy, total) ticks of the whole machine, steal included, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def busy_cores(seconds: float) -> float:
    """Cores the machine kept busy over ``seconds`` while this script only waited."""
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return round((busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1), 2)


# The markdown.


def measure(run: Run, skip: Sequence[str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "profile": run.profile.name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_average_start": os.getloadavg(),
        "sample_s": run.profile.sample_s,
        "background_cores": {},
        "steps": {},
    }
    started = time.monotonic()
    for name, step in STEPS.items():
        if name in skip:
            continue
        record["background_cores"][name] = busy_cores(run.profile.sample_s)
        print(
            f"record: {name} (other load {record['background_cores'][name]} cores)", file=sys.stderr
        )
        try:
            record["steps"][name] = step(run)
        # A failed step leaves its error in the record; the other steps still measure.
        except (StepFailed, OSError, KeyError, ValueError) as e:
            record["steps"][name] = {"error": f"{type(e).__name__}: {e}"}
    record["load_average_end"] = os.getloadavg()
    record["elapsed_s"] = round(time.monotonic() - started)
    return record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a 2-3 minute smoke run")
    p.add_argument("--out", default=str(HERE / "results"), help="default: bench/results")
    p.add_argument(
        "--harness", default="", help="the shared harness folder (bench/run.sh's default)"
    )
    p.add_argument("--skip", action="append", default=[], choices=list(STEPS))
    args = p.parse_args()
    # On SIGTERM unwind, so that run_step stops the step it is waiting for.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPLITGATE_PYTHON": os.environ.get("SPLITGATE_PYTHON", sys.executable)}
    record = measure(Run(QUICK if args.quick else FULL, out, args.harness, env), args.skip)
    markdown = render(record)
    (out / "record.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    (out / "record.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"(written: {out / 'record.json'}, {out / 'record.md'})", file=sys.stderr)
    return 1 if any("error" in s for s in record["steps"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
