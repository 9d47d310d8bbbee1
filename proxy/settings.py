"""Process settings of the proxy, read once at start-up from flags and the environment.

Flags win over environment variables. Nothing below ``__main__`` reads the environment.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from config.durations import parse_duration
from config.keys import DEFAULT_NAMESPACE, Keys
from config.listen import parse_listen as listen_address
from config.loader import ConfigError, describe_validation_error, load_config
from config.redis_url import parse_redis_url, with_settings
from config.schema import SplitgateConfig


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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="splitgate proxy",
        description="Run splitgate's data plane: the sticky weighted reverse proxy.",
    )
    p.add_argument("--config", help="routing file (YAML); env SPLITGATE_CONFIG")
    p.add_argument(
        "--listen", help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN}); env SPLITGATE_LISTEN"
    )
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
    p.add_argument(
        "--redis-url",
        help="follow the routing document in Redis (see README for Sentinel and Cluster URLs); "
        "env SPLITGATE_REDIS_URL",
    )
    p.add_argument("--log-level", help="debug, info, warning or error; env SPLITGATE_LOG_LEVEL")
    p.add_argument(
        "--workers",
        metavar="N",
        help=f"serving processes sharing the port, 1 to {MAX_WORKERS} (default 1: no extra "
        "process); env SPLITGATE_WORKERS",
    )
    return p


def from_args(argv: Sequence[str], env: Mapping[str, str]) -> ProxyProcess:
    """Parse flags and environment; raise ``ConfigError`` with a readable reason."""
    args = parser().parse_args(argv)
    config_path = args.config or env.get("SPLITGATE_CONFIG")
    if args.upstream and config_path:
        raise ConfigError(["--upstream and --config cannot be used together"])
    if args.upstream:
        config = inline_config(args.upstream, args.weight)
        source = "--upstream flags"
    elif config_path:
        config = load_config(Path(config_path))
        source = str(config_path)
    else:
        raise ConfigError(
            ["no routing given: pass --config PATH (or SPLITGATE_CONFIG), or --upstream TRACK=URL"]
        )
    host, port = parse_listen(args.listen or env.get("SPLITGATE_LISTEN") or DEFAULT_LISTEN)
    redis_url = args.redis_url or env.get("SPLITGATE_REDIS_URL") or None
    if redis_url is not None:
        try:
            redis_url = with_settings(
                redis_url, env.get("SPLITGATE_REDIS_SENTINEL_PASSWORD"), wait=None
            )
            parse_redis_url(redis_url)
        except ValueError as exc:
            raise ConfigError(
                [f"--redis-url: {exc}" if "SPLITGATE_" not in str(exc) else str(exc)]
            ) from None
    if args.workers is not None:
        workers = parse_workers(args.workers, "--workers")
    else:
        workers = parse_workers(env.get("SPLITGATE_WORKERS") or "1", "SPLITGATE_WORKERS")
    return ProxyProcess(
        config=config,
        config_source=source,
        host=host,
        port=port,
        internal_secret=env.get("SPLITGATE_INTERNAL_SECRET") or None,
        log_level=(args.log_level or env.get("SPLITGATE_LOG_LEVEL") or "info").upper(),
        redis_url=redis_url,
        instance=env.get("SPLITGATE_INSTANCE") or f"{socket.gethostname()}-{os.getpid()}",
        namespace=env.get("SPLITGATE_REDIS_NAMESPACE") or DEFAULT_NAMESPACE,
        pubsub=env.get("SPLITGATE_REDIS_PUBSUB", "on").lower() not in ("off", "0", "false", "no"),
        poll_s=_poll_seconds(env.get("SPLITGATE_REDIS_POLL", "1")),
        signing_key=env["SPLITGATE_SIGNING_KEY"].encode()
        if env.get("SPLITGATE_SIGNING_KEY")
        else None,
        workers=workers,
    )


def parse_workers(value: str, source: str, *, reuse_port: bool | None = None) -> int:
    """A worker count, 1..``MAX_WORKERS``; more than one needs SO_REUSEPORT from the platform.

    ``reuse_port`` says whether the platform has it (default: ask the ``socket`` module).
    """
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        raise ConfigError([f"{source} {value!r}: expected a whole number of processes"])
    workers = int(text)
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError([f"{source} {value!r}: must be between 1 and {MAX_WORKERS}"])
    if reuse_port is None:
        reuse_port = hasattr(socket, "SO_REUSEPORT")
    if workers > 1 and not reuse_port:
        raise ConfigError(
            [
                f"{source} {value!r}: several workers share the port with SO_REUSEPORT, "
                "which this platform lacks (Linux and the BSDs have it); use 1"
            ]
        )
    return workers


def _poll_seconds(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError([f"SPLITGATE_REDIS_POLL: {exc}"]) from None
    if not 0.05 <= seconds <= 60:
        raise ConfigError([f"SPLITGATE_REDIS_POLL: {value!r} must be between 50ms and 60s"])
    return seconds


def parse_listen(value: str) -> tuple[str, int]:
    try:
        return listen_address(value)
    except ValueError as exc:
        raise ConfigError([f"--listen {exc}"]) from None


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
