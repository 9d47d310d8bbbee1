"""Process settings of the control plane, read once at start-up from flags and the environment.

``ControlProcessSettings`` declares every setting (flag, ``SPLITGATE_*`` variable, format,
default); ``from_args`` reads them, loads the routing and environments files and gives the
frozen ``ControlProcess`` the control plane runs. Flags win over environment variables.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic_settings import SettingsConfigDict

from config.environments import SHIPPED_ENVIRONMENTS, EnvironmentsFile, load_environments
from config.keys import DEFAULT_NAMESPACE
from config.loader import ConfigError, load_routing_file
from config.process_settings import FlagParser, Format, ProcessSettings, instance_name, setting
from config.redis_url import MAX_WAIT_S, parse_redis_url, with_settings
from config.schema import RoutingDocument
from config.setting_formats import (
    LISTEN,
    LOG_LEVEL,
    PATH,
    REDIS_URL,
    SECRET,
    duration,
    text,
)
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


def _token(value: str) -> str:
    if len(value) < 16:
        raise ValueError("must be a secret of at least 16 characters")
    return value


def _webhooks(value: str) -> tuple[str, ...]:
    return tuple(parse_webhook_urls(value))


WAIT = Format(
    f"replicas 0 to 100, timeout a duration from 1ms to {MAX_WAIT_S:g}s "
    "(below the 2 s socket timeout)",
    str,
    "N[/TIMEOUT]",
)
"""Checked where it is folded into the Redis URL (``with_settings``), which names it."""


class ControlProcessSettings(ProcessSettings):
    """Every setting of ``splitgate control``: flag, ``SPLITGATE_*`` variable, format, default."""

    model_config = SettingsConfigDict(env_prefix="SPLITGATE_")

    config: Annotated[str, PATH] = setting(
        "the routing file that seeds an empty Redis", required=True
    )
    redis_url: Annotated[str, REDIS_URL] = setting(
        "where the routing document lives (`splitgate demo` runs a Redis for you)", required=True
    )
    redis_wait_replicas: Annotated[str | None, WAIT] = setting(
        "after each write of the routing document, wait until N Redis replicas have it, "
        "at most TIMEOUT (default 1s)",
        shown="`0`: do not wait",
    )
    redis_sentinel_password: Annotated[str | None, SECRET] = setting(
        "the Sentinels' own password, for a redis+sentinel:// URL"
    )
    listen: Annotated[tuple[str, int], LISTEN] = setting(
        "where the admin API serves", DEFAULT_LISTEN, env="SPLITGATE_CONTROL_LISTEN"
    )
    environments: Annotated[str, PATH] = setting(
        "per-environment rollout defaults and webhook URLs",
        str(SHIPPED_ENVIRONMENTS),
        shown="the shipped environments.yaml",
    )
    log_level: Annotated[str, LOG_LEVEL] = setting("log verbosity (stderr)", "info")
    admin_token: Annotated[
        str, Format("string of 16 characters or more", _token, "TOKEN", secret=True)
    ] = setting("the bearer token of the admin API, 16 characters or more", required=True)
    redis_namespace: Annotated[str, text("PREFIX")] = setting(
        "prefix of every Redis key; the proxies must use the same", DEFAULT_NAMESPACE
    )
    rollout_interval: Annotated[float, duration(0.1, 3600.0)] = setting(
        "how often the leader steps rollouts and flag schedules", "10s"
    )
    rollout_retention: Annotated[float, duration(3600.0, 3650 * 86400.0)] = setting(
        "how long a rollout that is over stays readable", "30d"
    )
    lease: Annotated[float, duration(1.0, 600.0)] = setting("the leader's lease", "10s")
    instance: Annotated[str, text("NAME")] = setting(
        "this control plane's name in the leader lease",
        factory=instance_name,
        shown="`<hostname>-<pid>`",
    )
    webhooks: Annotated[tuple[str, ...], Format("URL list", _webhooks, "URLS")] = setting(
        "webhook URLs told of rollout events, besides the environments file's", ""
    )
    webhook_secret: Annotated[str | None, SECRET] = setting(
        "signs each webhook body", shown="none: unsigned"
    )
    signing_key: Annotated[str | None, SECRET] = setting(
        "the proxies' key, to check the request ids that feedback names",
        shown="none: `POST /v1/feedback` answers 503",
    )


def parser() -> argparse.ArgumentParser:
    p = FlagParser(
        prog="splitgate control",
        description="Run splitgate's control plane: the admin API over the routing document in "
        "Redis. Every flag has a SPLITGATE_* variable; the flag wins (docs/SETTINGS.md).",
    )
    ControlProcessSettings.add_flags(p)
    return p


def from_args(argv: Sequence[str], env: Mapping[str, str]) -> ControlProcess:
    """Parse flags and environment; raise ``ConfigError`` with one line per problem."""
    args = parser().parse_args(argv)
    settings = ControlProcessSettings.load(vars(args), env)
    redis_url = _redis_url(settings, wait_flag=args.redis_wait_replicas is not None)
    environments = load_environments(settings.environments)
    host, port = settings.listen
    return ControlProcess(
        seed=load_routing_file(settings.config).document(),
        host=host,
        port=port,
        redis_url=redis_url,
        token=settings.admin_token,
        namespace=settings.redis_namespace,
        log_level=settings.log_level,
        signing_key=(settings.signing_key or "").encode(),
        rollout_interval_s=settings.rollout_interval,
        instance=settings.instance,
        lease_s=settings.lease,
        environments=environments,
        webhooks=tuple(dict.fromkeys([*environments.webhooks, *settings.webhooks])),
        webhook_secret=(settings.webhook_secret or "").encode(),
        retention_s=settings.rollout_retention,
    )


def _redis_url(settings: ControlProcessSettings, *, wait_flag: bool) -> str:
    """The Redis URL with the Sentinels' password and the replica wait folded in as its
    query parameters (the URL's own ones win); a problem names the setting."""
    try:
        url = with_settings(
            settings.redis_url, settings.redis_sentinel_password, settings.redis_wait_replicas
        )
        parse_redis_url(url)
    except ValueError as exc:
        reason = str(exc)
        if wait_flag:
            reason = reason.replace("SPLITGATE_REDIS_WAIT_REPLICAS", "--redis-wait-replicas")
        raise ConfigError(
            [reason if reason.startswith(("SPLITGATE_", "--")) else f"--redis-url: {reason}"]
        ) from None
    return url
