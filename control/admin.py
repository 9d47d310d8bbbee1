"""The admin API as one aiohttp application: every operation of the declared table
(``control.openapi.OPERATIONS``: routes, feedback, request lookups, shadow pairs, audit,
rollouts, flags, segments and the control plane's own health), behind one guard
(``control.api.guard``)."""

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
    guard,
)
from control.api_table import register
from control.decision_reader import DecisionReader
from control.flags_api import SCHEDULES
from control.health_api import REGISTRY, STATUS, Status, ready_without_loops
from control.openapi import OPERATIONS
from control.requests_api import DECISIONS
from control.rollouts import Rollouts
from control.schedule import Schedules
from control.shadow_api import PAIRS
from control.shadow_pairs import ShadowPairs
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
    decisions: DecisionReader | None = None,
    shadow_pairs: ShadowPairs | None = None,
) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app[STORE] = store
    if rollouts is not None:
        app[ROLLOUTS] = rollouts
    if schedules is not None:
        app[SCHEDULES] = schedules
    app[ENVIRONMENTS] = environments or EnvironmentsFile(environments={})
    app[SIGNING_KEY] = signing_key
    app[WINDOWS] = windows
    if decisions is not None:
        app[DECISIONS] = decisions
    if shadow_pairs is not None:
        app[PAIRS] = shadow_pairs
    app[TOKEN] = token
    app[STATUS] = status or ready_without_loops
    app[REGISTRY] = registry or CollectorRegistry()
    register(app, OPERATIONS)
    return app
