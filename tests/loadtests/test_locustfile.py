"""The locustfile end to end: a short headless locust run, in its own process, against a proxy
with two tracks on fake upstreams (gevent's monkey-patching never enters the test process)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from loadtests.settings import OPTIONS
from tests.conftest import StartProxy, StartUpstream, two_track_config

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any load-test or locust settings, plus ``settings``."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOADTEST_", "LOCUST_", "SPLITGATE_ADMIN_"))
    }
    return {**kept, "LOADTEST_SEED": "7", "LOADTEST_THINK_TIME": "0-0.05", **settings}


async def locust(host: str, env: dict[str, str], seconds: int = 4) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "-u",
        "8",
        "-r",
        "8",
        "-t",
        f"{seconds}s",
        "--host",
        host,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_a_healthy_proxy_passes_with_a_per_track_report(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    stable, stable_url = await start_upstream("v1.0.0")
    canary, canary_url = await start_upstream("v1.1.0")
    proxy = await start_proxy(two_track_config(stable_url, canary_url, canary_weight=50))

    code, out = await locust(proxy, clean_env(LOADTEST_EXPECT_WEIGHTS="stable=50,canary=50"))

    assert code == 0, out
    report = out[out.index("=== splitgate load test: per track ===") :]
    rows = {line.split()[0] for line in report.splitlines() if line.strip()}
    assert {"stable", "canary", "all"} <= rows
    assert "stickiness violations: 0" in report
    assert "generation 0: " in report
    assert "RESULT: PASS" in report
    assert "stream [canary]" in out and "TTFT" in out  # locust's own table, per track
    assert stable.received and canary.received
    user_ids = set(stable.user_ids) | set(canary.user_ids)
    assert all(u.startswith("loadtest-user-") for u in user_ids)
    assert not set(stable.user_ids) & set(canary.user_ids)  # sticky


async def test_a_failing_track_fails_the_run(
    start_upstream: StartUpstream, start_proxy: StartProxy
) -> None:
    _, stable_url = await start_upstream("v1.0.0")
    _, canary_url = await start_upstream("v1.1.0", status=500)
    proxy = await start_proxy(two_track_config(stable_url, canary_url, canary_weight=50))

    code, out = await locust(proxy, clean_env())

    assert code == 1, out
    report = out[out.index("=== splitgate load test: per track ===") :]
    assert "RESULT: FAIL" in report
    assert "turns failed (limit 1 %): HTTP 500" in report


async def test_bad_settings_stop_before_any_load(start_upstream: StartUpstream) -> None:
    _, url = await start_upstream("v1.0.0")
    code, out = await locust(url, clean_env(LOADTEST_STREAM_SHARE="2"))
    assert code != 0
    assert "--stream-share (LOADTEST_STREAM_SHARE): '2' is not between 0 and 1" in out


async def test_the_logic_imports_neither_locust_nor_gevent() -> None:
    modules = "admin expectations report scenario_rollout settings sse tally verdict workload"
    imports = "; ".join(f"import loadtests.{m}" for m in modules.split())
    check = f"{imports}; import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", check, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert out.decode().strip() == "[]"


async def test_every_option_is_a_locust_option_in_its_help_and_web_form() -> None:
    # Locust first, as `locust -f` does, so gevent patches before anything imports ssl.
    check = (
        "import json, locust, loadtests.locustfile; "
        "from locust.argument_parser import get_parser; p = get_parser(); "
        "print(json.dumps({'help': p.format_help(), "
        "'form': {d: a.is_secret for d, a in p.args_included_in_web_ui.items()}}))"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", check, cwd=ROOT, env=clean_env(), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    seen = json.loads(out.decode().splitlines()[-1])
    help_text = " ".join(seen["help"].split())
    for option in OPTIONS:
        assert option.flag in help_text and f"[{option.env}, default" in help_text, option.env
        assert seen["form"][option.dest] is option.secret, option.dest
