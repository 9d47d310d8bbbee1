"""The load test's settings: every option with its environment variable, parsed once per run.

``LoadtestSettings`` declares each option once (flag, variable, format, default, help);
``OPTIONS`` is the same list as locust wants it: the locustfile registers each as a locust
command-line option (so it shows in ``locust --help`` and in the web UI's start form) that
reads its environment variable by default; ``loadtests/README.md`` and docs/SETTINGS.md
document the same list. ``parse`` validates the values into a frozen ``Settings`` or raises
``ConfigError`` (a ``ValueError``) naming the option and its variable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic_settings import SettingsConfigDict

from config.loader import ConfigError
from config.process_settings import Format, ProcessSettings, setting
from loadtests.expectations import parse_weights
from loadtests.verdict import Rules
from loadtests.workload import PROMPT_SIZES


@dataclass(frozen=True)
class Option:
    """An option as locust registers it: ``default`` as it would be typed."""

    dest: str
    env: str
    default: str
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


@dataclass(frozen=True)
class Admin:
    url: str
    token: str
    route: str
    poll_s: float


@dataclass(frozen=True)
class RolloutOptions:
    plan_path: str
    after_s: float
    expect: str
    settle_s: float


@dataclass(frozen=True)
class Settings:
    model: str
    stream_share: float
    user_pool: int
    prompt_mix: dict[str, float]
    turns: tuple[int, int]
    think_time: tuple[float, float]
    max_tokens: int
    chat_path: str
    user_header: str
    conversation_header: str
    user_prefix: str
    api_key: str
    request_timeout: float
    rules: Rules
    expect_weights: dict[str, float] | None
    admin: Admin | None
    rollout: RolloutOptions | None
    seed: int | None
    warnings: tuple[str, ...] = ()
    """Settings that are valid but probably not what was meant."""


def _range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    a = float(low)
    b = float(high) if sep else a
    if not 0 <= a <= b:
        raise ValueError(f"{text!r}: expected N or MIN-MAX with 0 <= MIN <= MAX")
    return a, b


def _int_range(text: str, least: int) -> tuple[int, int]:
    a, b = _range(text)
    if a != int(a) or b != int(b) or a < least:
        raise ValueError(f"{text!r}: expected whole numbers of at least {least}")
    return int(a), int(b)


def _path(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError(f"{text!r}: a path starts with '/'")
    return text


def _header(text: str) -> str:
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError(f"{text!r} is not a header name")
    return text


def _expect(text: str) -> str:
    if text not in ("promoted", "rolled_back", "any"):
        raise ValueError(f"{text!r}: one of promoted, rolled_back, any")
    return text


def _number(text: str, low: float, high: float) -> float:
    value = float(text)
    if not low <= value <= high:
        raise ValueError(f"{text!r} is not between {low:g} and {high:g}")
    return value


def _mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in PROMPT_SIZES:
            raise ValueError(
                f"{part.strip()!r}: expected SIZE=WEIGHT, SIZE one of {', '.join(PROMPT_SIZES)}"
            )
        mix[name] = _number(value, 0, float("inf"))
    if not sum(mix.values()):
        raise ValueError("the weights add up to 0")
    return mix


def _whole(low: int, high: int) -> Callable[[str], int]:
    return lambda text: int(_number(text, low, high))


def _between(low: float, high: float) -> Callable[[str], float]:
    return lambda text: _number(text, low, high)


def _seed(text: str) -> int | None:
    return int(text) if text else None


def _weights(text: str) -> dict[str, float] | None:
    return parse_weights(text) if text else None


def _url(text: str) -> str:
    return text.rstrip("/")


TEXT = Format("string", str, "TEXT")
SECRET = Format("string", str, "SECRET", secret=True)
SHARE = Format("number, 0 to 1", _between(0, 1), "SHARE")
COUNT = Format("whole number, 1 or more", _whole(1, 10**9), "N")
SECONDS = Format("seconds, 0 to 86400", _between(0, 86400), "S")
HEADER = Format("header name", _header, "NAME")


class LoadtestSettings(ProcessSettings):
    """Every option of the load test; ``LOADTEST_*`` variables, the admin API's ``SPLITGATE_*``."""

    model_config = SettingsConfigDict(env_prefix="LOADTEST_")
    secret_flags = True  # locust masks them in its web UI

    model: Annotated[str, TEXT] = setting("the model name sent in each request", "demo")
    stream_share: Annotated[float, SHARE] = setting("share of turns that stream (0–1)", "0.7")
    user_pool: Annotated[int, COUNT] = setting("distinct end-user ids to draw from", "10000")
    prompt_mix: Annotated[
        dict[str, float], Format("SIZE=WEIGHT list (short, medium, long)", _mix, "MIX")
    ] = setting(
        "weights of prompt sizes: short (10–60 words), medium (150–500), long (1000–3000)",
        "short=60,medium=30,long=10",
    )
    turns: Annotated[
        tuple[int, int], Format("N or MIN-MAX, whole, 1 or more", lambda v: _int_range(v, 1), "N")
    ] = setting("turns per conversation: N or MIN-MAX", "1-6")
    think_time: Annotated[tuple[float, float], Format("S or MIN-MAX, seconds", _range, "S")] = (
        setting("seconds between turns: S or MIN-MAX", "1-5")
    )
    max_tokens: Annotated[int, Format("whole number, 1 to 1000000", _whole(1, 10**6), "N")] = (
        setting("max_tokens asked for in each request", "256")
    )
    chat_path: Annotated[str, Format("path starting with `/`", _path, "PATH")] = setting(
        "the chat endpoint", "/v1/chat/completions"
    )
    user_header: Annotated[str, HEADER] = setting("header carrying the user id", "x-user-id")
    conversation_header: Annotated[str, HEADER] = setting(
        "header carrying the conversation id", "x-conversation-id"
    )
    user_prefix: Annotated[str, TEXT] = setting("prefix of user ids", "loadtest-user-")
    api_key: Annotated[str, SECRET] = setting("sent as Authorization: Bearer", "")
    request_timeout: Annotated[
        float, Format("seconds, 0.1 to 86400", _between(0.1, 86400), "S")
    ] = setting("seconds without a byte before a turn is abandoned", "300")
    max_error_pct: Annotated[float, Format("percent, 0 to 100", _between(0, 100), "PCT")] = setting(
        "fail if more turns fail (percent)", "1"
    )
    split_tolerance_pp: Annotated[
        float, Format("percentage points, 0.01 to 100", _between(0.01, 100), "PP")
    ] = setting(
        "fail if a track's share of users is off its weight by more (percentage points)", "2"
    )
    split_min_users: Annotated[int, COUNT] = setting(
        "never judge the split on fewer distinct users than this", "200"
    )
    expect_weights: Annotated[
        dict[str, float] | None, Format("TRACK=PERCENT list", _weights, "WEIGHTS")
    ] = setting(
        "expected weights, e.g. stable=90,canary=10 (ignored when the admin API is given)", ""
    )
    admin_url: Annotated[str, Format("URL", _url, "URL")] = setting(
        "the control plane's admin API, e.g. http://127.0.0.1:8081", "", env="SPLITGATE_ADMIN_URL"
    )
    admin_token: Annotated[str, SECRET] = setting(
        "the admin API's bearer token", "", env="SPLITGATE_ADMIN_TOKEN"
    )
    route: Annotated[str, TEXT] = setting("the route whose weights are expected", "chat")
    admin_poll: Annotated[float, Format("seconds, 0.05 to 3600", _between(0.05, 3600), "S")] = (
        setting("seconds between reads of the admin API", "1")
    )
    rollout_plan: Annotated[str, Format("path to YAML", str, "PATH")] = setting(
        "a plan file: run it under load (needs the admin API)", ""
    )
    rollout_after: Annotated[float, SECONDS] = setting(
        "seconds of steady load (all users spawned) before the rollout starts", "20"
    )
    rollout_expect: Annotated[str, Format("`promoted`, `rolled_back` or `any`", str, "END")] = (
        setting("how the rollout must end: promoted, rolled_back or any", "promoted")
    )
    """Checked by ``parse`` only when a plan is given."""
    rollout_settle: Annotated[float, SECONDS] = setting(
        "seconds of load after the rollout ends, then the run stops", "10"
    )
    seed: Annotated[int | None, Format("whole number", _seed, "N")] = setting(
        "seed for the workload's randomness (default: random)", ""
    )


OPTIONS = tuple(
    Option(e.name, e.env, e.typed, e.help, e.format.secret) for e in LoadtestSettings.entries()
)
_NAMES = {o.dest: f"{o.flag} ({o.env})" for o in OPTIONS}


def parse(values: Mapping[str, object]) -> Settings:
    """Settings from option values (``Option.dest`` → value); empty ones take their default."""
    given = {dest: str(values[dest]).strip() for dest in _NAMES if values.get(dest) is not None}
    options = LoadtestSettings.checked({k: v for k, v in given.items() if v}, _NAMES)
    return Settings(
        model=options.model,
        stream_share=options.stream_share,
        user_pool=options.user_pool,
        prompt_mix=options.prompt_mix,
        turns=options.turns,
        think_time=options.think_time,
        max_tokens=options.max_tokens,
        chat_path=options.chat_path,
        user_header=options.user_header,
        conversation_header=options.conversation_header,
        user_prefix=options.user_prefix,
        api_key=options.api_key,
        request_timeout=options.request_timeout,
        rules=Rules(
            max_error_share=options.max_error_pct / 100,
            split_tolerance=options.split_tolerance_pp / 100,
            split_min_users=options.split_min_users,
        ),
        expect_weights=options.expect_weights,
        admin=Admin(options.admin_url, options.admin_token, options.route, options.admin_poll)
        if options.admin_url
        else None,
        rollout=_rollout(options),
        seed=options.seed,
        warnings=(NO_ADMIN_URL,) if options.admin_token and not options.admin_url else (),
    )


NO_ADMIN_URL = (
    "SPLITGATE_ADMIN_TOKEN is set without SPLITGATE_ADMIN_URL (--admin-url): the split is not "
    "judged against the live weights; set the URL too, e.g. http://127.0.0.1:8081"
)


def _rollout(options: LoadtestSettings) -> RolloutOptions | None:
    """The rollout scenario's options; how it must end is only read when a plan is given."""
    if not options.rollout_plan:
        return None
    if not options.admin_url:
        raise ConfigError([f"{_NAMES['rollout_plan']} needs {_NAMES['admin_url']}"])
    try:
        expect = _expect(options.rollout_expect)
    except ValueError as exc:
        raise ConfigError([f"{_NAMES['rollout_expect']}: {exc}"]) from None
    return RolloutOptions(
        options.rollout_plan, options.rollout_after, expect, options.rollout_settle
    )
