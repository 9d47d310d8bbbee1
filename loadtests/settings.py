"""The load test's settings: every option with its environment variable, parsed once per run.

``OPTIONS`` is the single list: the locustfile registers each as a locust command-line option
(so it shows in ``locust --help`` and in the web UI's start form) that reads its environment
variable by default; ``loadtests/README.md`` documents the same list. ``parse`` turns the
values into a frozen ``Settings`` or raises ``ValueError`` naming the option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from loadtests.expectations import parse_weights
from loadtests.verdict import Rules
from loadtests.workload import PROMPT_SIZES


@dataclass(frozen=True)
class Option:
    dest: str
    env: str
    default: str
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


OPTIONS = (
    Option("model", "LOADTEST_MODEL", "demo", "the model name sent in each request"),
    Option("stream_share", "LOADTEST_STREAM_SHARE", "0.7", "share of turns that stream (0–1)"),
    Option("user_pool", "LOADTEST_USER_POOL", "10000", "distinct end-user ids to draw from"),
    Option(
        "prompt_mix",
        "LOADTEST_PROMPT_MIX",
        "short=60,medium=30,long=10",
        "weights of prompt sizes: short (10–60 words), medium (150–500), long (1000–3000)",
    ),
    Option("turns", "LOADTEST_TURNS", "1-6", "turns per conversation: N or MIN-MAX"),
    Option("think_time", "LOADTEST_THINK_TIME", "1-5", "seconds between turns: S or MIN-MAX"),
    Option("max_tokens", "LOADTEST_MAX_TOKENS", "256", "max_tokens asked for in each request"),
    Option("chat_path", "LOADTEST_CHAT_PATH", "/v1/chat/completions", "the chat endpoint"),
    Option("user_header", "LOADTEST_USER_HEADER", "x-user-id", "header carrying the user id"),
    Option(
        "conversation_header",
        "LOADTEST_CONVERSATION_HEADER",
        "x-conversation-id",
        "header carrying the conversation id",
    ),
    Option("user_prefix", "LOADTEST_USER_PREFIX", "loadtest-user-", "prefix of user ids"),
    Option("api_key", "LOADTEST_API_KEY", "", "sent as Authorization: Bearer", secret=True),
    Option(
        "request_timeout",
        "LOADTEST_REQUEST_TIMEOUT",
        "300",
        "seconds without a byte before a turn is abandoned",
    ),
    Option("max_error_pct", "LOADTEST_MAX_ERROR_PCT", "1", "fail if more turns fail (percent)"),
    Option(
        "split_tolerance_pp",
        "LOADTEST_SPLIT_TOLERANCE_PP",
        "2",
        "fail if a track's share of users is off its weight by more (percentage points)",
    ),
    Option(
        "split_min_users",
        "LOADTEST_SPLIT_MIN_USERS",
        "200",
        "never judge the split on fewer distinct users than this",
    ),
    Option(
        "expect_weights",
        "LOADTEST_EXPECT_WEIGHTS",
        "",
        "expected weights, e.g. stable=90,canary=10 (ignored when the admin API is given)",
    ),
    Option(
        "admin_url",
        "SPLITGATE_ADMIN_URL",
        "",
        "the control plane's admin API, e.g. http://127.0.0.1:8081",
    ),
    Option("admin_token", "SPLITGATE_ADMIN_TOKEN", "", "the admin API's bearer token", secret=True),
    Option("route", "LOADTEST_ROUTE", "chat", "the route whose weights are expected"),
    Option("admin_poll", "LOADTEST_ADMIN_POLL", "1", "seconds between reads of the admin API"),
    Option(
        "rollout_plan",
        "LOADTEST_ROLLOUT_PLAN",
        "",
        "a plan file: run it under load (needs the admin API)",
    ),
    Option(
        "rollout_after",
        "LOADTEST_ROLLOUT_AFTER",
        "20",
        "seconds of steady load (all users spawned) before the rollout starts",
    ),
    Option(
        "rollout_expect",
        "LOADTEST_ROLLOUT_EXPECT",
        "promoted",
        "how the rollout must end: promoted, rolled_back or any",
    ),
    Option(
        "rollout_settle",
        "LOADTEST_ROLLOUT_SETTLE",
        "10",
        "seconds of load after the rollout ends, then the run stops",
    ),
    Option("seed", "LOADTEST_SEED", "", "seed for the workload's randomness (default: random)"),
)


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


T = TypeVar("T")
_BY_DEST = {o.dest: o for o in OPTIONS}


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


def parse(values: Mapping[str, object]) -> Settings:
    """Settings from option values (``Option.dest`` → value); empty ones take their default."""

    def read(dest: str, convert: Callable[[str], T]) -> T:
        option = _BY_DEST[dest]
        raw = values.get(dest)
        text = option.default if raw is None or raw == "" else str(raw).strip()
        try:
            return convert(text)
        except ValueError as exc:
            raise ValueError(f"{option.flag} ({option.env}): {exc}") from None

    admin_url = read("admin_url", str).rstrip("/")
    plan = read("rollout_plan", str)
    if plan and not admin_url:
        raise ValueError(
            "--rollout-plan (LOADTEST_ROLLOUT_PLAN) needs --admin-url (SPLITGATE_ADMIN_URL)"
        )
    return Settings(
        model=read("model", str),
        stream_share=read("stream_share", lambda v: _number(v, 0, 1)),
        user_pool=read("user_pool", lambda v: int(_number(v, 1, 10**9))),
        prompt_mix=read("prompt_mix", _mix),
        turns=read("turns", lambda v: _int_range(v, 1)),
        think_time=read("think_time", _range),
        max_tokens=read("max_tokens", lambda v: int(_number(v, 1, 10**6))),
        chat_path=read("chat_path", _path),
        user_header=read("user_header", _header),
        conversation_header=read("conversation_header", _header),
        user_prefix=read("user_prefix", str),
        api_key=read("api_key", str),
        request_timeout=read("request_timeout", lambda v: _number(v, 0.1, 86400)),
        rules=Rules(
            max_error_share=read("max_error_pct", lambda v: _number(v, 0, 100)) / 100,
            split_tolerance=read("split_tolerance_pp", lambda v: _number(v, 0.01, 100)) / 100,
            split_min_users=read("split_min_users", lambda v: int(_number(v, 1, 10**9))),
        ),
        expect_weights=read("expect_weights", lambda v: parse_weights(v) if v else None),
        admin=Admin(
            admin_url,
            read("admin_token", str),
            read("route", str),
            read("admin_poll", lambda v: _number(v, 0.05, 3600)),
        )
        if admin_url
        else None,
        rollout=RolloutOptions(
            plan,
            read("rollout_after", lambda v: _number(v, 0, 86400)),
            read("rollout_expect", _expect),
            read("rollout_settle", lambda v: _number(v, 0, 86400)),
        )
        if plan
        else None,
        seed=read("seed", lambda v: int(v) if v else None),
        warnings=(
            (
                "SPLITGATE_ADMIN_TOKEN is set without SPLITGATE_ADMIN_URL (--admin-url): the "
                "split is not judged against the live weights; set the URL too, e.g. "
                "http://127.0.0.1:8081",
            )
            if read("admin_token", str) and not admin_url
            else ()
        ),
    )
