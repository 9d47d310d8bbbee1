"""The performance record's tables, in Markdown (``bench/record.py`` writes them to
``bench/results/record.md``; ``docs/PERFORMANCE.md`` carries them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STREAMS = 200
PROXIES = ("nginx", "refproxy", "splitgate")


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def cpu_cell(p: dict[str, Any]) -> str:
    each = ", ".join(fmt(x, 1) for x in p["cpu_us_per_request_each"])
    return f"{fmt(p['cpu_us_per_request'], 1)} ({each})"


ROWS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("requests/s per proxy core (1e6 ÷ CPU-µs)", lambda p: fmt(p["rps_per_core"])),
    ("CPU-µs per request (each repetition)", cpu_cell),
    ("CPU per request ÷ nginx", lambda p: fmt(p["cpu_vs_nginx"], 1)),
    ("requests/s, proxy pinned to one core", lambda p: fmt(p["rps_pinned"])),
    (f"added TTFB p50, {STREAMS} concurrent streams, ms", lambda p: fmt(p["added_ttfb_p50_ms"], 1)),
    (f"added TTFB p99, {STREAMS} concurrent streams, ms", lambda p: fmt(p["added_ttfb_p99_ms"], 1)),
    ("CPU-ms per stream (20 chunks)", lambda p: fmt(p["cpu_ms_per_stream"], 2)),
    ("TTFB p50 / p99 (absolute), ms", lambda p: " / ".join(fmt(x, 1) for x in p["ttfb_ms"])),
    (
        "memory per open stream, KiB (streams held)",
        lambda p: f"{fmt(p['kib_per_stream'], 1)} ({fmt(p['streams_held'])})",
    ),
    ("idle RSS, MiB", lambda p: fmt(p["rss_idle_mib"], 1)),
    (
        "green share % (10 % weight) / sticky %",
        lambda p: f"{fmt(p['green_pct'], 2)} / {fmt(p['sticky_pct'], 1)}",
    ),
    ("errors, all phases", lambda p: fmt(p["errors"])),
)
LABELS = {"nginx": "nginx", "refproxy": "refproxy (bare aiohttp)", "splitgate": "**splitgate**"}


def harness_md(h: dict[str, Any]) -> list[str]:
    proxies, p = h["proxies"], h["params"]
    lines = ["| | " + " | ".join(LABELS[n] for n in proxies) + " |"]
    lines.append("|---" * (len(proxies) + 1) + "|")
    for label, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(proxies[n]) for n in proxies) + " |")
    each = ", ".join(f"{x:.2f}" for x in h["splitgate_vs_refproxy_cpu_each"])
    direct = h["direct_ttfb_ms"]
    lines += [
        "",
        f"Shared harness, medians of {p['reps']} repetition(s): wrk {p['duration']} s at "
        f"{p['connections']} connections (after {p['warmup']} s warm-up); {p['bursts']} bursts "
        f"of {p['streams']} concurrent {p['chunks']}-chunk streams, TTFB against direct "
        f"(p50 / p99 {fmt(direct[0], 1)} / {fmt(direct[1], 1)} ms); memory with "
        f"{p['mem_streams']} streams held. splitgate ÷ refproxy CPU per request, each "
        f"repetition: {each or '—'} (median {fmt(h['splitgate_vs_refproxy_cpu'], 2)}).",
    ]
    for name, figures in proxies.items():
        if figures["failures"]:
            lines.append(
                f"{name} failed in {len(figures['failures'])} repetition(s): {figures['failures'][0][:300]}"
            )
    return lines


def propagation_md(p: dict[str, Any]) -> list[str]:
    lines = [
        "| weight change to 3 replicas | rounds | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    for mode, s in p.items():
        lines.append(f"| {mode} | {s['rounds']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |")
    return lines


def workers_md(w: dict[str, Any]) -> list[str]:
    lines = [
        "| `--workers` | req/s (median) | × 1 worker (median per repetition) | proxy CPU µs/req | other load, cores | errors |",
        "|---|---|---|---|---|---|",
    ]
    for n, s in w["summary"].items():
        lines.append(
            f"| {n} | {s['rps']:,.0f} | {s['ratio_paired']:.2f} | {s['cpu_us_per_request']:.0f} "
            f"| {s['others']:.2f} | {s['errors']:.0f} |"
        )
    return [*lines, "", f"{w['setup']}; proxy not pinned, it shares the CPUs with the load."]


def machine_md(record: dict[str, Any]) -> str:
    m, versions = record["machine"], record["steps"].get("harness", {}).get("versions", {})
    tools = [versions.get("nginx", "").removeprefix("nginx version: ")]
    tools.append(" ".join(versions.get("wrk", "").split()[:2]))
    background = ", ".join(f"{k} {v:.2f}" for k, v in record["background_cores"].items())
    start, end = (
        "/".join(f"{x:.2f}" for x in record[k]) for k in ("load_average_start", "load_average_end")
    )
    return (
        f"Machine: {m['cpu_model']}, {m['cpus']} CPUs ({m['cpus_usable']} usable), "
        f"{m['memory_gib']} GiB, {m['os']}, Linux {m['kernel']}; Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, uvloop {m['uvloop']}{''.join(f', {t}' for t in tools if t)}. "
        f"Commit {(m['commit'] or '?')[:12]} ({m['ref'] or 'detached'}). "
        f"{record['date']}, {record['profile']} run, {record['elapsed_s'] / 60:.0f} min. "
        f"Other work on the machine, busy cores over {record['sample_s']:g} s before each step: "
        f"{background}; load average {start} at the start, {end} at the end."
    )


def render(record: dict[str, Any]) -> str:
    sections: list[str] = [machine_md(record)]
    for name, title, body in (
        ("harness", "Proxies side by side", harness_md),
        ("propagation", "Propagation of a weight change", propagation_md),
        ("workers", "Requests/s from 1 to N workers", workers_md),
    ):
        figures = record["steps"].get(name)
        if figures is None:
            continue
        text = [f"**{name} failed:** {figures['error']}"] if "error" in figures else body(figures)
        sections.append("\n".join([f"### {title}", "", *text]))
    return "\n\n".join(sections) + "\n"


# Main.
