"""The admin API as one aiohttp application: routes and weights (``control.api``), rollouts
(``control.rollouts_api``), flags (``control.flags_api``) and the control plane's own health
(``control.health_api``), behind one guard."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from config.environments import EnvironmentsFile
from control.api import (
    ENVIRONMENTS,
    MAX_BODY,
    ROLLOUTS,
    SIGNING_KEY,
    STORE,
    TOKEN,
    WINDOWS,
    add_upstream,
    audit,
    delete_track,
    feedback,
    get_route,
    guard,
    healthz,
    list_routes,
    openapi,
    put_track,
    put_weights,
    remove_upstream,
    route_metrics,
)
from control.flags_api import add_flag_routes
from control.health_api import Status, add_health_routes
from control.rollouts import Rollouts
from control.rollouts_api import add_rollout_routes
from control.schedule import Schedules
from control.segments_api import add_segment_routes
from control.store import DocumentStore
from control.windows import WindowReader


def create_api(
    store: DocumentStore,
    windows: WindowReader,
    token: str,
    signing_key: bytes = b"",
    rollouts: Rollouts | None = None,
    environments: EnvironmentsFile | None = None,
    schedules: Schedules | None = None,
    *,
    status: Status | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[STORE] = store
    if rollouts is not None:
        app[ROLLOUTS] = rollouts
    app[ENVIRONMENTS] = environments or EnvironmentsFile(environments={})
    app[SIGNING_KEY] = signing_key
    app[WINDOWS] = windows
    app[TOKEN] = token
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/v1/routes", list_routes)
    app.router.add_get("/v1/routes/{route}", get_route)
    app.router.add_put("/v1/routes/{route}/weights", put_weights)
    app.router.add_put("/v1/routes/{route}/tracks/{track}", put_track)
    app.router.add_delete("/v1/routes/{route}/tracks/{track}", delete_track)
    app.router.add_post("/v1/routes/{route}/tracks/{track}/upstreams", add_upstream)
    app.router.add_delete("/v1/routes/{route}/tracks/{track}/upstreams", remove_upstream)
    app.router.add_get("/v1/routes/{route}/metrics", route_metrics)
    app.router.add_get("/v1/audit", audit)
    app.router.add_post("/v1/feedback", feedback)
    add_rollout_routes(app)
    add_flag_routes(app, schedules)
    add_segment_routes(app)
    if status is not None:
        add_health_routes(app, status, registry or CollectorRegistry())
    return app
