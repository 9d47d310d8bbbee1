"""Process settings of the control plane, read once at start-up from flags and the environment."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from config.durations import parse_duration
from config.environments import SHIPPED_ENVIRONMENTS, EnvironmentsFile, load_environments
from config.keys import DEFAULT_NAMESPACE
from config.listen import parse_listen
from config.loader import ConfigError, load_config
from config.redis_url import parse_redis_url, with_settings
from config.schema import RoutingDocument
from control.notify import parse_webhook_urls

DEFAULT_LISTEN = "127.0.0.1:8081"


@dataclass(frozen=True)
class ControlProcess:
    seed: RoutingDocument
    host: str
    port: int
    redis_url: str
    token: str
    namespace: str
    log_level: str
    signing_key: bytes
    rollout_interval_s: float
    instance: str
    lease_s: float
    environments: EnvironmentsFile
    webhooks: tuple[str, ...] = ()
    """The environments file's ``webhooks`` and ``SPLITGATE_WEBHOOKS``, together."""
    webhook_secret: bytes = b""
    retention_s: float = 30 * 86400.0
    """How long a finished rollout stays readable before it is deleted."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="splitgate control",
        description="Run splitgate's control plane: the admin API over the routing document in Redis.",
    )
    p.add_argument("--config", help="routing file that seeds an empty Redis; env SPLITGATE_CONFIG")
    p.add_argument(
        "--listen",
        help=f"HOST:PORT of the admin API (default {DEFAULT_LISTEN}); env SPLITGATE_CONTROL_LISTEN",
    )
    p.add_argument("--redis-url", help="where the routing document lives; env SPLITGATE_REDIS_URL")
    p.add_argument(
        "--redis-wait-replicas",
        metavar="N[/TIMEOUT]",
        help="after each write of the routing document, wait until N Redis replicas have it, "
        "at most TIMEOUT (default 1s, at most 10s); default 0: do not wait (see docs/REDIS.md); "
        "env SPLITGATE_REDIS_WAIT_REPLICAS",
    )
    p.add_argument(
        "--environments",
        help="environment defaults for rollouts (YAML; default: the shipped config/examples/environments.yaml); env SPLITGATE_ENVIRONMENTS",
    )
    p.add_argument("--log-level", help="debug, info, warning or error; env SPLITGATE_LOG_LEVEL")
    return p


def from_args(argv: Sequence[str], env: Mapping[str, str]) -> ControlProcess:
    args = parser().parse_args(argv)
    problems = []
    config_path = args.config or env.get("SPLITGATE_CONFIG")
    redis_url = args.redis_url or env.get("SPLITGATE_REDIS_URL")
    token = env.get("SPLITGATE_ADMIN_TOKEN", "")
    if not config_path:
        problems.append("no routing file: pass --config PATH (or SPLITGATE_CONFIG) to seed Redis")
    if not redis_url:
        problems.append(
            "no Redis: pass --redis-url URL (or SPLITGATE_REDIS_URL); `splitgate demo` runs one for you"
        )
    if len(token) < 16:
        problems.append("SPLITGATE_ADMIN_TOKEN must be set to a secret of at least 16 characters")
    try:
        host, port = parse_listen(
            args.listen or env.get("SPLITGATE_CONTROL_LISTEN") or DEFAULT_LISTEN
        )
    except ValueError as exc:
        problems.append(f"--listen {exc}")
        host, port = "", 0
    if redis_url:
        try:
            redis_url = with_settings(
                redis_url,
                env.get("SPLITGATE_REDIS_SENTINEL_PASSWORD"),
                args.redis_wait_replicas or env.get("SPLITGATE_REDIS_WAIT_REPLICAS"),
            )
            parse_redis_url(redis_url)
        except ValueError as exc:
            problems.append(f"--redis-url: {exc}" if "SPLITGATE_" not in str(exc) else str(exc))
    try:
        extra_hooks = parse_webhook_urls(env.get("SPLITGATE_WEBHOOKS", ""))
    except ValueError as exc:
        problems.append(f"SPLITGATE_WEBHOOKS: {exc}")
        extra_hooks = []
    rollout_interval_s = _duration(
        env, "SPLITGATE_ROLLOUT_INTERVAL", "10s", (0.1, 3600.0), problems
    )
    lease_s = _duration(env, "SPLITGATE_LEASE", "10s", (1.0, 600.0), problems)
    retention_s = _duration(
        env, "SPLITGATE_ROLLOUT_RETENTION", "30d", (3600.0, 3650 * 86400.0), problems
    )
    if problems:
        raise ConfigError(problems)
    assert config_path is not None and redis_url is not None
    environments = load_environments(
        args.environments or env.get("SPLITGATE_ENVIRONMENTS") or SHIPPED_ENVIRONMENTS
    )
    return ControlProcess(
        seed=load_config(Path(config_path)).document(),
        host=host,
        port=port,
        redis_url=redis_url,
        token=token,
        namespace=env.get("SPLITGATE_REDIS_NAMESPACE") or DEFAULT_NAMESPACE,
        log_level=(args.log_level or env.get("SPLITGATE_LOG_LEVEL") or "info").upper(),
        signing_key=env.get("SPLITGATE_SIGNING_KEY", "").encode(),
        rollout_interval_s=rollout_interval_s,
        instance=env.get("SPLITGATE_INSTANCE") or f"{socket.gethostname()}-{os.getpid()}",
        lease_s=lease_s,
        environments=environments,
        webhooks=tuple(dict.fromkeys([*environments.webhooks, *extra_hooks])),
        webhook_secret=env.get("SPLITGATE_WEBHOOK_SECRET", "").encode(),
        retention_s=retention_s,
    )


def _duration(
    env: Mapping[str, str],
    name: str,
    default: str,
    bounds: tuple[float, float],
    problems: list[str],
) -> float:
    """A duration setting from the environment; a bad one is a problem naming it."""
    raw = env.get(name, default)
    low, high = bounds
    try:
        value = parse_duration(raw)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return parse_duration(default)
    if not low <= value <= high:
        problems.append(f"{name}: {raw!r} is outside {_span(low)} to {_span(high)}")
    return value


def _span(seconds: float) -> str:
    """``600s``, ``0.1s``; whole days as ``30d`` (not ``2.592e+06s``)."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    return f"{seconds:g}s"
