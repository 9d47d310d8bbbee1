"""Process settings: flags over environment, inline upstreams, readable errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.loader import ConfigError
from proxy.__main__ import main
from proxy.settings import ProxyProcessSettings, from_args, inline_config, parse_listen

EXAMPLE = str(Path(__file__).parents[2] / "config" / "examples" / "routes.yaml")


def test_flags_win_over_environment() -> None:
    env = {
        "SPLITGATE_CONFIG": EXAMPLE,
        "SPLITGATE_LISTEN": "0.0.0.0:9000",
        "SPLITGATE_INTERNAL_SECRET": "s",
    }
    process = from_args(["--listen", "127.0.0.1:7000"], env)
    assert (process.host, process.port, process.internal_secret) == ("127.0.0.1", 7000, "s")
    assert process.config.routes[0].name == "chat"
    assert from_args([], env).port == 9000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":8080", ("0.0.0.0", 8080)),
        ("[::1]:81", ("::1", 81)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["8080", "host:", "host:99999", "host:http"])
def test_bad_listen(value: str) -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        parse_listen(value)


def test_inline_config_gives_the_rest_to_the_first_track() -> None:
    config = inline_config(["blue=http://127.0.0.1:1", "green=http://127.0.0.1:2"], ["green=12.5"])
    route = config.routes[0]
    assert [(t.name, t.weight) for t in route.tracks] == [("blue", 87.5), ("green", 12.5)]
    assert route.match.path_prefix == "/"
    assert route.baseline_name() == "blue"


@pytest.mark.parametrize(
    ("upstreams", "weights", "message"),
    [
        (["blue"], [], "expected TRACK=URL"),
        (["blue=http://h:1"], ["red=5"], "for a track given with --upstream"),
        (["blue=http://h:1"], ["blue=x"], "is not a number"),
        (["blue=ftp://h:1"], [], "http:// or https://"),
        (["blue=http://h:1", "green=http://h:2"], ["blue=50", "green=60"], "add up to 100"),
    ],
)
def test_inline_config_errors(upstreams: list[str], weights: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        inline_config(upstreams, weights)


def test_no_routing_given() -> None:
    with pytest.raises(ConfigError, match="no routing given"):
        from_args([], {})
    with pytest.raises(ConfigError, match="cannot be used together"):
        from_args(["--config", EXAMPLE, "--upstream", "a=http://h:1"], {})


INLINE = ["--upstream", "a=http://127.0.0.1:1"]
BAD = {
    "SPLITGATE_CONFIG": "/nonexistent/routes.yaml",
    "SPLITGATE_LISTEN": "8080",
    "SPLITGATE_OPS_LISTEN": "everywhere:port",
    "SPLITGATE_REDIS_URL": "http://127.0.0.1:6379",
    "SPLITGATE_WORKERS": "lots",
    "SPLITGATE_LOG_LEVEL": "loud",
    "SPLITGATE_REDIS_POLL": "10ms",
    "SPLITGATE_REDIS_PUBSUB": "maybe",
}
"""A bad value for every setting whose format can be broken."""
ANY_STRING = {
    "SPLITGATE_INTERNAL_SECRET",
    "SPLITGATE_INSTANCE",
    "SPLITGATE_REDIS_NAMESPACE",
    "SPLITGATE_SIGNING_KEY",
    "SPLITGATE_REDIS_SENTINEL_PASSWORD",  # bad only with a URL that is not Sentinel's: below
}
ENTRIES = {e.env: e for e in ProxyProcessSettings.entries()}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``os.environ`` without the developer's own ``SPLITGATE_*`` settings."""
    for name in list(os.environ):
        if name.startswith("SPLITGATE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_every_setting_has_a_bad_value_below() -> None:
    assert set(BAD) | ANY_STRING == set(ENTRIES)


def run_main(
    argv: list[str], env: dict[str, str], mp: pytest.MonkeyPatch, cap: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    for name, value in env.items():
        mp.setenv(name, value)
    code = main(argv)
    return code, cap.readouterr().err.splitlines()


@pytest.mark.parametrize("via", ["variable", "flag"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_is_one_line_naming_it_and_exit_2(
    name: str, via: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry, value = ENTRIES[name], BAD[name]
    base = [] if entry.name == "config" else INLINE
    if via == "flag":
        assert entry.flag is not None
        argv, env, named = [*base, entry.flag, value], {}, entry.flag
    else:
        argv, env, named = base, {name: value}, name
    code, lines = run_main(argv, env, clean_env, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("splitgate proxy: ")
    assert (value if entry.name == "config" else f": {named}: ") in f": {lines[0]}"


def test_a_sentinel_password_needs_a_sentinel_url(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"SPLITGATE_REDIS_SENTINEL_PASSWORD": "pw", "SPLITGATE_REDIS_URL": "redis://h:1/0"}
    code, lines = run_main(INLINE, env, clean_env, capsys)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("splitgate proxy: SPLITGATE_REDIS_SENTINEL_PASSWORD: ")


def test_usage_mistakes_are_one_line_and_exit_2(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_main([*INLINE, "--nope"], {}, clean_env, capsys)
    assert (code, lines) == (2, ["splitgate proxy: unrecognized arguments: --nope"])


def test_every_setting_is_read_from_its_flag_and_its_variable() -> None:
    env = {
        "SPLITGATE_INTERNAL_SECRET": "s",
        "SPLITGATE_INSTANCE": "pod-1",
        "SPLITGATE_REDIS_NAMESPACE": "ns",
        "SPLITGATE_REDIS_POLL": "250ms",
        "SPLITGATE_REDIS_PUBSUB": "OFF",
        "SPLITGATE_SIGNING_KEY": "k",
        "SPLITGATE_LOG_LEVEL": "Debug",
        "SPLITGATE_REDIS_URL": "redis+sentinel://s1:26379/main/0",
        "SPLITGATE_REDIS_SENTINEL_PASSWORD": "pw",
    }
    process = from_args(INLINE, env)
    assert (process.internal_secret, process.instance, process.namespace) == ("s", "pod-1", "ns")
    assert (process.poll_s, process.pubsub, process.signing_key) == (0.25, False, b"k")
    assert process.log_level == "DEBUG"
    assert process.redis_url == "redis+sentinel://s1:26379/main/0?sentinel_password=pw"
    flags = ["--instance", "pod-2", "--redis-namespace", "n2", "--redis-poll", "2s"]
    process = from_args([*INLINE, *flags, "--redis-pubsub", "yes"], env)
    assert (process.instance, process.namespace, process.poll_s) == ("pod-2", "n2", 2.0)
    assert process.pubsub is True


def test_defaults() -> None:
    process = from_args(INLINE, {})
    assert (process.host, process.port, process.log_level) == ("127.0.0.1", 8080, "INFO")
    assert (process.redis_url, process.namespace, process.pubsub) == (None, "splitgate", True)
    assert (process.poll_s, process.internal_secret, process.signing_key) == (1.0, None, None)
    assert process.instance.endswith(f"-{os.getpid()}")
