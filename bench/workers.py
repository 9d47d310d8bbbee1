"""Throughput of ``splitgate proxy --workers N`` for N = 1, 2, ... against a fast fake upstream.

Everything runs on loopback: a raw-asyncio upstream (a canned chat completion, far cheaper
than the proxy, so that it is not what limits), the proxy as users start it
(``python -m proxy --workers N --upstream ...``), and a load generator: ``wrk`` when it is on
PATH (``apt-get install wrk``), else several Python client processes. The worker counts
alternate within each repetition (the order rotates) and the table gives medians, as the
shared harness does (../shared/bench). Besides requests per second it reports the proxy's CPU
time per request, summed over the supervisor and its workers (from /proc), which does not
depend on how many cores were left for the proxy, and the cores that other work on the machine
kept busy meanwhile (from /proc/stat): on a shared machine that is what moves the figures.

    python bench/workers.py [--max-workers 4] [--reps 3] [--duration 5] [--warmup 2]
                            [--connections 64] [--client auto|wrk|python] [--json out.json]

Each run is bounded: reps x counts x (start + warmup + duration) seconds, a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import uvloop

from splitgate.redis_server import free_port

BODY = json.dumps(
    {"model": "bench-model", "messages": [{"role": "user", "content": "Say hello."}]}
).encode()
ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
    + ANSWER
)
LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
WRK_SCRIPT = (
    """
wrk.body = '"""
    + BODY.decode()
    + """'
function init(args)
  math.randomseed(os.time())
end
function request()
  local uid = "u" .. math.random(0, 9999)
  return wrk.format("POST", "/v1/chat/completions",
    {["Content-Type"] = "application/json", ["X-User-Id"] = uid}, wrk.body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout))
end
"""
)


# The fake upstream: HTTP/1.1 keep-alive with Content-Length bodies, one canned answer.


class FastUpstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            match = LENGTH.search(self._buffer, 0, end + 2)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            self._transport.write(RESPONSE)


async def serve_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FastUpstream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


# The Python load client (when wrk is missing): C keep-alive connections for a fixed time.


async def one_connection(port: int, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"X-User-Id: u{id(writer) % 10000}\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = LENGTH.search(head)
            await reader.readexactly(int(match.group(1)) if match else 0)
            counts[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
    except (OSError, asyncio.IncompleteReadError):
        counts[1] += 1
    finally:
        writer.close()


async def load(port: int, connections: int, seconds: float) -> None:
    counts = [0, 0]
    until = time.monotonic() + seconds
    await asyncio.gather(*(one_connection(port, until, counts) for _ in range(connections)))
    print(json.dumps({"requests": counts[0], "errors": counts[1]}))


# The orchestrator.


@dataclass(frozen=True)
class Sample:
    workers: int
    rps: float
    cpu_us_per_request: float
    errors: int
    others: float
    """Cores busy with other work on the machine meanwhile (not proxy, upstream, load)."""


def spawn_self(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def wait_http(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body: bytes = r.read()
                return body.decode()
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def processes_of(root: int) -> list[int]:
    """``root`` and its children (the workers, and multiprocessing's idle tracker)."""
    found = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == root:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def start_proxy(workers: int, upstream: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy",
            "--workers",
            str(workers),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"a=http://127.0.0.1:{upstream}",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/readyz")
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while workers > 1 and len(seen) < workers:  # each scrape reaches one worker
        if time.monotonic() > deadline:
            raise TimeoutError(f"only workers {sorted(seen)} of {workers} answered")
        metrics = wait_http(f"http://127.0.0.1:{port}/metrics")
        seen.update(re.findall(r'splitgate_worker_info\{worker="(\d+)"', metrics))
    return proxy, port


def run_load(port: int, args: argparse.Namespace, seconds: float) -> tuple[int, int, float]:
    """Drive the proxy for ``seconds``; return (answered, errors, measured seconds)."""
    if args.client == "wrk":
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(WRK_SCRIPT)
            script.flush()
            command = [
                *("wrk", f"-t{args.client_procs}", f"-c{args.connections}", f"-d{seconds:.0f}s"),
                *("--timeout", "10s", "-s", script.name),
                f"http://127.0.0.1:{port}/v1/chat/completions",
            ]
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=seconds + 60,
                check=True,
            )
        line = next(x for x in done.stdout.splitlines() if x.startswith("WRKJSON "))
        result = json.loads(line.removeprefix("WRKJSON "))
        return result["requests"], result["errors"], result["duration_us"] / 1e6
    per = max(1, args.connections // args.client_procs)
    clients = [
        spawn_self("client", str(port), str(per), str(seconds)) for _ in range(args.client_procs)
    ]
    started = time.monotonic()
    answered = errors = 0
    for client in clients:
        out, _ = client.communicate(timeout=seconds + 60)
        result = json.loads(out)
        answered += result["requests"]
        errors += result["errors"]
    return answered, errors, max(seconds, time.monotonic() - started)


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (steal included), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def ours_seconds(pids: list[int]) -> float:
    """CPU of ``pids`` plus that of every child this script has waited for (the load)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return cpu_seconds(pids) + children.ru_utime + children.ru_stime


def measure(workers: int, upstream: int, upstream_pid: int, args: argparse.Namespace) -> Sample:
    proxy, port = start_proxy(workers, upstream)
    try:
        run_load(port, args, args.warmup)
        pids = processes_of(proxy.pid)
        before = (cpu_seconds(pids), ours_seconds([*pids, upstream_pid]), machine_busy_seconds())
        answered, errors, seconds = run_load(port, args, args.duration)
        after = (cpu_seconds(pids), ours_seconds([*pids, upstream_pid]), machine_busy_seconds())
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=60)
    cpu, ours, busy = (a - b for a, b in zip(after, before, strict=True))
    return Sample(
        workers, answered / seconds, cpu / max(answered, 1) * 1e6, errors, (busy - ours) / seconds
    )


def summary(reps: list[dict[int, Sample]], counts: list[int]) -> dict[int, dict[str, float]]:
    """Per worker count: medians, and the ratio to the first count both of medians and per
    repetition (same minute, so less exposed to the machine's drift)."""
    base = statistics.median(rep[counts[0]].rps for rep in reps)
    out: dict[int, dict[str, float]] = {}
    for n in counts:
        mine = [rep[n] for rep in reps]
        rps = statistics.median(s.rps for s in mine)
        out[n] = {
            "rps": rps,
            "ratio": rps / base,
            "ratio_paired": statistics.median(rep[n].rps / rep[counts[0]].rps for rep in reps),
            "cpu_us_per_request": statistics.median(s.cpu_us_per_request for s in mine),
            "others": statistics.median(s.others for s in mine),
            "errors": sum(s.errors for s in mine),
        }
    return out


def table(reps: list[dict[int, Sample]], counts: list[int]) -> str:
    """One row per worker count; ratios both of medians and per repetition (same minute)."""
    rows = [
        "| workers | req/s (median) | × 1 worker | × 1 worker, per repetition (median) "
        "| proxy CPU µs/req | req/s per repetition | other load, cores | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, s in summary(reps, counts).items():
        each = ", ".join(f"{rep[n].rps:,.0f}" for rep in reps)
        others = ", ".join(f"{rep[n].others:.2f}" for rep in reps)
        rows.append(
            f"| {n} | {s['rps']:,.0f} | {s['ratio']:.2f} | {s['ratio_paired']:.2f} "
            f"| {s['cpu_us_per_request']:.0f} | {each} | {others} | {s['errors']:.0f} |"
        )
    return "\n".join(rows)


def write_json(path: str, reps: list[dict[int, Sample]], counts: list[int], head: str) -> None:
    document = {
        "setup": head,
        "summary": {str(n): s for n, s in summary(reps, counts).items()},
        "samples": [[asdict(rep[n]) for n in counts] for rep in reps],
    }
    Path(path).write_text(json.dumps(document, indent=2), encoding="utf-8")


def orchestrate(args: argparse.Namespace) -> None:
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    cpus = len(os.sched_getaffinity(0))
    counts = list(range(1, (args.max_workers or min(cpus, 4)) + 1))
    upstream_port = free_port()
    upstream = spawn_self("upstream", str(upstream_port))
    try:
        wait_http(f"http://127.0.0.1:{upstream_port}/", timeout=30)
        reps: list[dict[int, Sample]] = []
        for rep in range(args.reps):
            order = counts[rep % len(counts) :] + counts[: rep % len(counts)]
            reps.append({})
            for n in order:
                sample = measure(n, upstream_port, upstream.pid, args)
                reps[-1][n] = sample
                print(f"rep {rep + 1} workers {n}: {sample.rps:,.0f} req/s", file=sys.stderr)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    head = (
        f"{cpus} CPUs ({os.cpu_count()} online), load generator {args.client} "
        f"({args.client_procs} threads/processes, {args.connections} connections), "
        f"{args.reps} repetitions of {args.duration} s after {args.warmup} s warm-up"
    )
    print(f"{head}\n")
    print(table(reps, counts))
    if args.json:
        write_json(args.json, reps, counts, head)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--max-workers", type=int, default=0, help="default: CPUs, at most 4")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--client-procs", type=int, default=2, help="wrk threads or client processes")
    p.add_argument("--json", help="write the figures and every sample here too")
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        uvloop.run(serve_upstream(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        port, connections, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        uvloop.run(load(port, connections, seconds))
    else:
        orchestrate(p.parse_args())


if __name__ == "__main__":
    main()
