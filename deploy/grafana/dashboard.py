"""Generate ``splitgate.json``, the Grafana dashboard of splitgate's ``/metrics``.

Run ``python deploy/grafana/dashboard.py > deploy/grafana/splitgate.json`` after a change; the
suite checks that the committed file is what this prints, and runs every query against a real
Prometheus scraping real proxies (tests/deploy/).

Every panel reads the data source chosen in the ``datasource`` variable, and the routes chosen
in ``route``. Per-version panels keep route, track and version and name each series
``track version``; they read the users' requests (``mode="live"``), except the "Shadow copies"
row, which reads the copies a route mirrors to its shadow track (``mode="shadow"``). The
proxies' own state is per instance (one series per scraped process).
"""

from __future__ import annotations

import sys

from grafana_foundation_sdk.builders.common import VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
ROUTE = 'route=~"$route"'
LIVE = f'{ROUTE}, mode="live"'
"""The users' requests: shadow copies (``mode="shadow"``) never reached anyone."""
SHADOW = f'{ROUTE}, mode="shadow"'
BY_VERSION = "route, track, version"
VERSION_LEGEND = "{{track}} {{version}}"
RATE = "[$__rate_interval]"


def rate(metric: str, by: str = BY_VERSION, match: str = LIVE) -> str:
    return f"sum by ({by}) (rate({metric}{{{match}}}{RATE}))"


def quantile(histogram: str, match: str = LIVE) -> str:
    return f"histogram_quantile(0.95, {rate(f'{histogram}_bucket', BY_VERSION + ', le', match)})"


def panel(title: str, description: str, unit: str, *queries: tuple[str, str]) -> Panel:
    """A time series of ``(expr, legendFormat)`` queries, read from the chosen data source."""
    built = (
        Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(8)
        .span(8)
        .legend(
            VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
    )
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        built = built.with_target(
            Dataquery().datasource(DATASOURCE).expr(expr).legend_format(legend).ref_id(ref)
        )
    return built


def traffic(dashboard: Dashboard) -> Dashboard:
    errors = rate("splitgate_request_errors_total")
    requests = rate("splitgate_requests_total")
    return (
        dashboard.with_row(Row("Traffic per version"))
        .with_panel(
            panel(
                "Requests per second",
                "Requests answered by each track and version (every error class included).",
                "reqps",
                (requests, VERSION_LEGEND),
            )
        )
        .with_panel(
            panel(
                "Error ratio",
                "Failed requests over requests, every error class (as the rollouts count it).",
                "percentunit",
                (f"{errors}\n/\n{requests}", VERSION_LEGEND),
            )
        )
        .with_panel(
            panel(
                "Weights",
                "Each track's weight in the routing in use, and its role.",
                "percent",
                (
                    f"max by ({BY_VERSION}, role) (splitgate_track_weight{{{ROUTE}}})",
                    "{{track}} {{version}} ({{role}})",
                ),
            )
        )
        .with_panel(
            panel(
                "Errors per second by class",
                "connect, timeout, upstream_5xx, upstream_429, proxy_4xx, cut, truncated.",
                "reqps",
                (
                    rate("splitgate_request_errors_total", f"{BY_VERSION}, class"),
                    "{{track}} {{version}} {{class}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Client disconnects per second",
                "Clients that went away before the end of the answer.",
                "reqps",
                (rate("splitgate_client_disconnects_total"), VERSION_LEGEND),
            )
        )
    )


def latency(dashboard: Dashboard) -> Dashboard:
    completion = rate("splitgate_tokens_total", match=f'{LIVE}, kind="completion"')
    return (
        dashboard.with_row(Row("Latency and tokens per version"))
        .with_panel(
            panel(
                "p95 latency",
                "95th percentile of whole-request latency, from the merged histograms.",
                "s",
                (quantile("splitgate_request_duration_seconds"), VERSION_LEGEND),
            )
        )
        .with_panel(
            panel(
                "p95 time to first token",
                "95th percentile of the time to the first body byte (the first token on streams).",
                "s",
                (quantile("splitgate_time_to_first_byte_seconds"), VERSION_LEGEND),
            )
        )
        .with_panel(
            panel(
                "Tokens per second",
                "Prompt and completion tokens reported in the answers' usage.",
                "short",
                (
                    rate("splitgate_tokens_total", f"{BY_VERSION}, kind"),
                    "{{track}} {{version}} {{kind}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Completion tokens per request",
                "Completion tokens over requests answered.",
                "short",
                (f"{completion}\n/\n{rate('splitgate_requests_total')}", VERSION_LEGEND),
            )
        )
    )


def routing(dashboard: Dashboard) -> Dashboard:
    by_upstream = "route, track, upstream"
    return (
        dashboard.with_row(Row("Routing and health"))
        .with_panel(
            panel(
                "Stale routing",
                "Seconds since Redis last confirmed each proxy's routing (-1: not following Redis).",
                "s",
                ("max by (instance) (splitgate_routing_stale_seconds)", "{{instance}}"),
            )
        )
        .with_panel(
            panel(
                "Redis connected",
                "1 while each proxy's routing watcher is connected to Redis.",
                "bool_yes_no",
                ("min by (instance) (splitgate_redis_connected)", "{{instance}}"),
            )
        )
        .with_panel(
            panel(
                "Sample-ratio p-value",
                "Chi-square p-value of the observed split against the weights, per proxy "
                "(below 0.001: mismatch; -1: too few requests).",
                "short",
                (
                    f"min by (route, instance) (splitgate_sample_ratio_p_value{{{ROUTE}}})",
                    "{{route}} {{instance}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Ejected upstreams",
                "Proxies whose passive health keeps the upstream out of its track.",
                "short",
                (
                    f"sum by ({by_upstream}) (splitgate_upstream_ejected{{{ROUTE}}})",
                    "{{track}} {{upstream}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Routing generation",
                "Generation of the routing each proxy serves (0: its config file).",
                "none",
                ("max by (instance) (splitgate_routing_generation)", "{{instance}}"),
            )
        )
        .with_panel(
            panel(
                "Control-loop errors",
                "Failed passes of the control plane's loops, or failures for one record.",
                "short",
                (
                    "sum by (loop) (increase(splitgate_control_loop_errors_total[$__rate_interval]))",
                    "{{loop}}",
                ),
            )
        )
    )


def shadow(dashboard: Dashboard) -> Dashboard:
    errors = rate("splitgate_request_errors_total", match=SHADOW)
    requests = rate("splitgate_requests_total", match=SHADOW)
    return (
        dashboard.with_row(Row("Shadow copies"))
        .with_panel(
            panel(
                "Shadow copies per second",
                "Copies of users' requests a route mirrors to its shadow track (never answered "
                "to anyone), by the shadow's track and version.",
                "reqps",
                (requests, VERSION_LEGEND),
            )
        )
        .with_panel(
            panel(
                "Shadow error ratio",
                "Failed copies over copies, every error class.",
                "percentunit",
                (f"{errors}\n/\n{requests}", VERSION_LEGEND),
            )
        )
        .with_panel(
            panel(
                "Shadow p95 latency",
                "95th percentile of the copies' whole-request latency.",
                "s",
                (quantile("splitgate_request_duration_seconds", SHADOW), VERSION_LEGEND),
            )
        )
        .with_panel(
            panel(
                "Shadow copies dropped per second",
                "Requests drawn for mirroring but not copied (in_flight, tokens: over the "
                "route's limits; streamed_body: too large to keep) and pairs not kept (pairs).",
                "reqps",
                (
                    rate("splitgate_shadow_dropped_total", "route, reason", ROUTE),
                    "{{route}} {{reason}}",
                ),
            )
        )
        .with_panel(
            panel(
                "Shadow copies in flight",
                "Copies running now, summed over the proxies.",
                "short",
                (f"sum by (route) (splitgate_shadow_in_flight{{{ROUTE}}})", "{{route}}"),
            )
        )
    )


def build() -> Dashboard:
    dashboard = (
        Dashboard("splitgate")
        .uid("splitgate")
        .description(
            "Per-version traffic, errors, latency and tokens; routing and health; shadow copies."
        )
        .tags(["splitgate", "llm", "canary"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("route")
            .label("Route")
            .datasource(DATASOURCE)
            .query("label_values(splitgate_track_weight, route)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    return shadow(routing(latency(traffic(dashboard))))


def main() -> None:
    model = build().build()
    # Grafana tells panels apart by id (links, the panel editor): number them in order.
    for number, built in enumerate(model.panels or [], start=1):
        built.id_val = number
    sys.stdout.write(JSONEncoder(sort_keys=True, indent=2).encode(model) + "\n")


if __name__ == "__main__":
    main()
