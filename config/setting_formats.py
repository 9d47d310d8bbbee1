"""The formats both planes' settings share: durations in a range, listen addresses, log levels,
on/off switches, Redis URLs, paths and strings. Each is a ``Format`` (config/process_settings.py):
the text docs/SETTINGS.md shows, and the parser whose ``ValueError`` says what is wrong."""

from __future__ import annotations

from config.durations import parse_duration
from config.listen import parse_listen
from config.process_settings import Format
from config.redis_url import parse_redis_url

LEVELS = ("debug", "info", "warning", "error")
_ALIASES = {"warn": "warning", "critical": "error", "fatal": "error"}
"""Names ``logging`` also takes (as earlier versions did): read as the level they mean."""
_ON = ("on", "1", "true", "yes")
_OFF = ("off", "0", "false", "no")

_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))


def span(seconds: float) -> str:
    """``10m``, ``50ms``, ``3650d``: the largest unit that divides ``seconds`` exactly."""
    for unit, size in _UNITS:
        count = seconds / size
        if seconds >= size and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"


def duration(low: float, high: float) -> Format:
    """A duration (config/durations.py) from ``low`` to ``high`` seconds, both included."""

    def parse(value: object) -> float:
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            raise ValueError(f"{value!r} is outside {span(low)} to {span(high)}")
        return seconds

    return Format(f"duration, {span(low)} to {span(high)}", parse, "DURATION")


def text(metavar: str) -> Format:
    return Format("string", str, metavar)


def _level(value: str) -> str:
    name = value.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in LEVELS:
        raise ValueError(f"{value!r} is not a log level: use one of {', '.join(LEVELS)}")
    return name.upper()


def _switch(value: str) -> bool:
    word = value.strip().lower()
    if word in _ON:
        return True
    if word in _OFF:
        return False
    raise ValueError(f"{value!r}: expected on or off (also 1/0, true/false, yes/no)")


def _redis_url(value: str) -> str:
    parse_redis_url(value)
    return value


PATH = Format("path to YAML", str, "PATH")
SECRET = Format("string", str, "SECRET", secret=True)
LISTEN = Format("listen address", parse_listen, "HOST:PORT")
LOG_LEVEL = Format(", ".join(f"`{level}`" for level in LEVELS), _level, "LEVEL")
SWITCH = Format("`on` or `off` (also `1`/`0`, `true`/`false`, `yes`/`no`)", _switch, "on/off")
REDIS_URL = Format("Redis URL", _redis_url, "URL")
