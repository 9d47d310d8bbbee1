"""Process settings of the proxy, read once at start-up from flags and the environment.

``ProxyProcessSettings`` declares every setting (flag, ``SPLITGATE_*`` variable, format, default);
``from_args`` reads them, adds the routing (a file, or ``--upstream``/``--weight``) and gives
the frozen ``ProxyProcess`` the server runs. Flags win over environment variables. Nothing
below ``__main__`` reads the environment.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from config.keys import DEFAULT_NAMESPACE, Keys
from config.listen import parse_listen as listen_address
from config.loader import ConfigError, describe_validation_error, load_routing_file
from config.process_settings import FlagParser, Format, ProcessSettings, instance_name, setting
from config.redis_url import parse_redis_url, with_settings
from config.schema import SplitgateConfig
from config.setting_formats import (
    LISTEN,
    LOG_LEVEL,
    PATH,
    REDIS_URL,
    SECRET,
    SWITCH,
    duration,
    text,
)


@dataclass(frozen=True)
class Follow:
    """Follow the routing document in Redis instead of serving the file's routing alone."""

    redis_url: str
    instance: str
    keys: Keys = field(default_factory=Keys)
    poll_s: float = 1.0
    pubsub: bool = True
    first_sync_s: float = 1.0


DEFAULT_LISTEN = "127.0.0.1:8080"
MAX_WORKERS = 64


@dataclass(frozen=True)
class ProxyProcess:
    config: SplitgateConfig
    config_source: str
    host: str
    port: int
    internal_secret: str | None
    log_level: str
    redis_url: str | None
    instance: str
    namespace: str
    pubsub: bool
    poll_s: float
    signing_key: bytes | None
    workers: int = 1
    """Serving processes sharing the port with SO_REUSEPORT (1: this process serves alone)."""
    ops: tuple[str, int] | None = None
    """Where ``/metrics``, ``/healthz`` and ``/readyz`` are served apart (None: on the port)."""


def parse_workers(value: object, *, reuse_port: bool | None = None) -> int:
    """A worker count, 1..``MAX_WORKERS``; more than one needs SO_REUSEPORT from the platform.

    ``reuse_port`` says whether the platform has it (default: ask the ``socket`` module).
    """
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{value!r}: expected a whole number of processes")
    workers = int(text)
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"{value!r}: must be between 1 and {MAX_WORKERS}")
    if reuse_port is None:
        reuse_port = hasattr(socket, "SO_REUSEPORT")
    if workers > 1 and not reuse_port:
        raise ValueError(
            f"{value!r}: several workers share the port with SO_REUSEPORT, "
            "which this platform lacks (Linux and the BSDs have it); use 1"
        )
    return workers


class ProxyProcessSettings(ProcessSettings):
    """Every setting of ``splitgate proxy``: its flag, ``SPLITGATE_*`` variable, format, default."""

    model_config = SettingsConfigDict(env_prefix="SPLITGATE_")

    config: Annotated[str | None, PATH] = setting(
        "the routing file; needed unless --upstream is given (not both)"
    )
    listen: Annotated[tuple[str, int], LISTEN] = setting("where the proxy serves", DEFAULT_LISTEN)
    ops_listen: Annotated[tuple[str, int] | None, LISTEN] = setting(
        "a second address for /metrics, /healthz and /readyz alone; the client port then "
        "answers /metrics with 404",
        shown="none: all on the client port",
    )
    redis_url: Annotated[str | None, REDIS_URL] = setting(
        "follow the routing document in Redis (Sentinel and Cluster URLs: docs/SETTINGS.md)",
        shown="none: the file's routing, fixed",
    )
    workers: Annotated[int, Format(f"1 to {MAX_WORKERS}", parse_workers, "N")] = setting(
        "serving processes sharing the port with SO_REUSEPORT", "1"
    )
    log_level: Annotated[str, LOG_LEVEL] = setting("log verbosity (stderr)", "info")
    internal_secret: Annotated[str | None, SECRET] = setting(
        "what X-Splitgate-Internal must carry for X-Splitgate-Track to pick a track",
        shown="none: nobody may override",
    )
    instance: Annotated[str, text("NAME")] = setting(
        "this replica's name in its acks (workers add -w<N>)",
        factory=instance_name,
        shown="`<hostname>-<pid>`",
    )
    redis_namespace: Annotated[str, text("PREFIX")] = setting(
        "prefix of every Redis key; the control plane must use the same", DEFAULT_NAMESPACE
    )
    redis_sentinel_password: Annotated[str | None, SECRET] = setting(
        "the Sentinels' own password, for a redis+sentinel:// URL"
    )
    redis_poll: Annotated[float, duration(0.05, 60.0)] = setting(
        "how often the generation in Redis is polled", "1s"
    )
    redis_pubsub: Annotated[bool, SWITCH] = setting(
        "hear of changes on the change channel; off: poll alone", "on"
    )
    signing_key: Annotated[str | None, SECRET] = setting(
        "signs each response's request id for feedback",
        shown="none: a random key per process",
    )


def parser() -> argparse.ArgumentParser:
    p = FlagParser(
        prog="splitgate proxy",
        description="Run splitgate's data plane: the sticky weighted reverse proxy. "
        "Every flag has a SPLITGATE_* variable; the flag wins (docs/SETTINGS.md).",
    )
    ProxyProcessSettings.add_flags(p)
    p.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="TRACK=URL",
        help="without --config: one track per flag on a single route for every path",
    )
    p.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="TRACK=PERCENT",
        help="with --upstream: a track's share (the first track takes what is left)",
    )
    return p


def from_args(argv: Sequence[str], env: Mapping[str, str]) -> ProxyProcess:
    """Parse flags and environment; raise ``ConfigError`` with one line per problem."""
    args = parser().parse_args(argv)
    settings = ProxyProcessSettings.load(vars(args), env)
    if args.upstream and settings.config:
        raise ConfigError(["--upstream and --config cannot be used together"])
    if args.upstream:
        config = inline_config(args.upstream, args.weight)
        source = "--upstream flags"
    elif settings.config:
        config = load_routing_file(settings.config)
        source = settings.config
    else:
        raise ConfigError(
            ["no routing given: pass --config PATH (or SPLITGATE_CONFIG), or --upstream TRACK=URL"]
        )
    host, port = settings.listen
    return ProxyProcess(
        config=config,
        config_source=source,
        host=host,
        port=port,
        internal_secret=settings.internal_secret,
        log_level=settings.log_level,
        redis_url=_redis_url(settings),
        instance=settings.instance,
        namespace=settings.redis_namespace,
        pubsub=settings.redis_pubsub,
        poll_s=settings.redis_poll,
        signing_key=settings.signing_key.encode() if settings.signing_key else None,
        workers=settings.workers,
        ops=settings.ops_listen,
    )


def _redis_url(settings: ProxyProcessSettings) -> str | None:
    """The Redis URL with the Sentinels' password folded in (the URL's own one wins)."""
    if settings.redis_url is None:
        return None
    try:
        url = with_settings(settings.redis_url, settings.redis_sentinel_password, wait=None)
        parse_redis_url(url)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    return url


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``--listen`` takes it; ``ConfigError`` naming the flag otherwise."""
    try:
        return listen_address(value)
    except ValueError as exc:
        raise ConfigError([f"--listen: {exc}"]) from None


def inline_config(upstreams: Sequence[str], weights: Sequence[str]) -> SplitgateConfig:
    """One route for every path, one track per ``--upstream``, sticky on X-User-Id."""
    tracks: dict[str, dict[str, object]] = {}
    for item in upstreams:
        name, sep, url = item.partition("=")
        if not sep:
            raise ConfigError([f"--upstream {item!r}: expected TRACK=URL"])
        tracks[name] = {"name": name, "version": name, "upstreams": [url], "weight": 0}
    given: dict[str, float] = {}
    for item in weights:
        name, sep, value = item.partition("=")
        if not sep or name not in tracks:
            raise ConfigError(
                [f"--weight {item!r}: expected TRACK=PERCENT for a track given with --upstream"]
            )
        try:
            given[name] = float(value)
        except ValueError:
            raise ConfigError([f"--weight {item!r}: {value!r} is not a number"]) from None
    first = next(iter(tracks))
    for name, track in tracks.items():
        track["weight"] = given.get(name, 0.0)
    if first not in given:
        tracks[first]["weight"] = round(100 - sum(given.values()), 2)
    document = {
        "routes": [
            {
                "name": "default",
                "match": {"path_prefix": "/"},
                "stickiness": ["header:x-user-id", "header:x-session-id", "client_ip"],
                "tracks": list(tracks.values()),
            }
        ]
    }
    try:
        return SplitgateConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "--upstream/--weight")) from None
