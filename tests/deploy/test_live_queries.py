"""Every query of the Grafana dashboard and of the alert rules, on a real Prometheus.

Two proxies following a real Redis, a control plane, and fake backends: the canary fails half
its answers and one of its two upstreams refuses connections, so it is ejected. A second route
mirrors every POST to a track with no live traffic whose backend fails every copy (a shadow
phase). Prometheus scrapes all three every second and loads the alert rules. Each dashboard
query must return series carrying the labels its legend names (the "Shadow copies" row's
included); each metric an alert reads must exist, with the labels the rule groups and matches
on; the canary and ejection alerts' conditions hold, and the failing copies fire nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from config.keys import Keys
from config.schema import SplitgateConfig
from control.app import ControlApp
from control.redis_client import connect
from proxy.app import Follow
from splitgate.redis_server import RedisServer
from tests.conftest import StartApp, StartProxy, StartUpstream, refused_url
from tests.deploy.prometheus import (
    ALERTS,
    PrometheusServer,
    alert_rules,
    dashboard_queries,
    grouping_labels,
    selectors,
    substitute,
)

TOKEN = "prometheus-test-token-0123456789"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SHADOWED = 150
"""POST requests on the mirroring route: enough copies (100) for the canary alert to judge."""


async def eventually(check: Callable[[], Awaitable[str | None]], within_s: float = 60) -> None:
    """Poll until ``check`` returns None (all good); fail with its last complaint."""
    complaint: str | None = "not checked"
    try:
        async with asyncio.timeout(within_s):
            while (complaint := await check()) is not None:  # noqa: ASYNC110 - polling Prometheus
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise AssertionError(complaint) from None


def fleet_config(stable: str, canary: str, failing: str) -> SplitgateConfig:
    return SplitgateConfig.model_validate(
        {
            "proxy": {"outlier_detection": {"consecutive_failures": 1}},
            "routes": [
                {
                    "name": "chat",
                    "tracks": [
                        {
                            "name": "stable",
                            "version": "v1.0.0",
                            "upstreams": [stable],
                            "weight": 50,
                        },
                        {
                            "name": "canary",
                            "version": "v1.1.0",
                            "upstreams": [canary, refused_url()],
                            "weight": 50,
                        },
                    ],
                },
                {
                    "name": "complete",
                    "match": {"path_prefix": "/v1/completions"},
                    "tracks": [
                        {
                            "name": "stable",
                            "version": "v1.0.0",
                            "upstreams": [stable],
                            "weight": 100,
                        },
                        {"name": "next", "version": "v2.0.0", "upstreams": [failing], "weight": 0},
                    ],
                    "shadow": {"track": "next", "percent": 100, "max_in_flight": 1000},
                },
            ],
        }
    )


@pytest.fixture
async def prometheus(
    start_upstream: StartUpstream,
    start_proxy: StartProxy,
    start_app: StartApp,
    redis_server: RedisServer,
) -> AsyncIterator[tuple[PrometheusServer, list[str]]]:
    """Prometheus scraping two proxies and a control plane; yields it and the proxies' URLs."""
    _, stable = await start_upstream("v1.0.0")
    _, canary = await start_upstream("v1.1.0", error_rate=0.5)
    _, failing = await start_upstream("v2.0.0", error_rate=1.0)
    config = fleet_config(stable, canary, failing)
    control = ControlApp(
        connect(redis_server.url), Keys(), config.document(), TOKEN, rollout_interval_s=0.2
    )
    await control.start()
    control_url = await start_app(control.web_app())
    proxies = [
        await start_proxy(config, follow=Follow(redis_server.url, f"proxy-{i}", poll_s=0.2))
        for i in range(2)
    ]
    server = PrometheusServer(
        {
            "splitgate-proxy": [url.removeprefix("http://") for url in proxies],
            "splitgate-control": [control_url.removeprefix("http://")],
        },
        [ALERTS],
    )
    try:
        await server.start()
        yield server, proxies
    finally:
        await server.stop()
        await control.close()


async def send_traffic(proxies: list[str], users: int, path: str = "/v1/chat/completions") -> None:
    async with aiohttp.ClientSession() as session:
        for i in range(users):
            proxy = proxies[i % len(proxies)]
            headers = {"x-user-id": f"user-{i}"}
            async with session.post(f"{proxy}{path}", json=BODY, headers=headers) as r:
                await r.read()
                assert r.status in (200, 500), r.status


@pytest.mark.timeout(300)
async def test_every_dashboard_and_alert_query_returns_labelled_series(
    prometheus: tuple[PrometheusServer, list[str]],
) -> None:
    server, proxies = prometheus

    async def scraped() -> str | None:
        targets = (await server.api("targets"))["activeTargets"]
        up = [t for t in targets if t["health"] == "up"]
        if len(up) != 3:
            return f"targets not all up: {[(t['scrapeUrl'], t['health']) for t in targets]}"
        # Counters seen at 0 first, so increase() counts the first ejection.
        if not await server.query("splitgate_upstream_ejections_total"):
            return "no splitgate_upstream_ejections_total yet"
        return None

    await eventually(scraped)
    await send_traffic(proxies, 400)
    # Every one answered by the baseline, and copied to "next", which fails every copy.
    await send_traffic(proxies, SHADOWED, "/v1/completions")

    async def dashboard_answers() -> str | None:
        for title, expr, legend in dashboard_queries():
            complaint = missing_labels(await server.query(expr), legend)
            if complaint is not None:
                return f"panel {title!r}: {expr}\n{complaint}"
        return None

    await eventually(dashboard_answers)

    async def alerts_answer() -> str | None:
        for rule in alert_rules():
            expr = substitute(rule["expr"])
            await server.query(expr)  # valid PromQL, evaluated without error
            needed = grouping_labels(expr)
            for metric, written in selectors(expr):
                series = await server.query(written)
                if not series:
                    return f"{rule['alert']}: {written} returns nothing"
                complaint = missing_labels(await server.query(metric), needed)
                if complaint is not None:
                    return f"{rule['alert']}: {metric} lacks labels it groups on\n{complaint}"
        return None

    await eventually(alerts_answer)

    firing = {
        "SplitgateCandidateErrorRatioAboveBaseline": {"route", "track", "version"},
        "SplitgateUpstreamEjected": {"route", "track", "upstream"},
    }
    by_name = {rule["alert"]: rule for rule in alert_rules()}

    async def conditions_hold() -> str | None:
        copies = await server.query(
            'sum by (route, track, version) (splitgate_requests_total{mode="shadow"})'
        )
        counted = {(s["metric"]["route"], s["metric"]["track"]): s["value"][1] for s in copies}
        if counted != {("complete", "next"): str(SHADOWED)}:
            return f"shadow copies counted: {counted}, expected {SHADOWED} on complete/next"
        for name, labels in firing.items():
            series = await server.query(by_name[name]["expr"])
            if not series:
                return f"{name}: its condition does not hold"
            complaint = missing_labels(series, labels)
            if complaint is not None:
                return f"{name}: {complaint}"
        canary = await server.query(by_name["SplitgateCandidateErrorRatioAboveBaseline"]["expr"])
        # Not complete/next: its copies all fail, but no user saw them (mode="shadow").
        tracks = {(s["metric"]["route"], s["metric"]["track"]) for s in canary}
        if tracks != {("chat", "canary")}:
            return f"candidates above the baseline: {tracks}"
        return None

    await eventually(conditions_hold)

    async def rules_healthy() -> str | None:
        groups = (await server.api("rules"))["groups"]
        bad = [
            (r["name"], r.get("lastError"))
            for g in groups
            for r in g["rules"]
            if r["health"] == "err"
        ]
        return f"rules failing in Prometheus: {bad}" if bad else None

    await eventually(rules_healthy)


def missing_labels(series: list[dict[str, Any]], labels: set[str]) -> str | None:
    """None when there are series and every one carries ``labels``; else what is wrong."""
    if not series:
        return "no series"
    lacking = [s["metric"] for s in series if not labels <= s["metric"].keys()]
    if lacking:
        return f"series without {sorted(labels)}: {lacking[:3]}"
    return None
