"""The control plane's settings: a bad value is a one-line error that names it, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.loader import ConfigError
from control.__main__ import main
from control.settings import ControlProcessSettings, from_args

ENV = {"SPLITGATE_ADMIN_TOKEN": "t" * 20}


@pytest.fixture
def args(tmp_path: Path) -> list[str]:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - name: chat\n    match: {path_prefix: /}\n    tracks:\n"
        '      - {name: stable, version: v1, upstreams: ["http://127.0.0.1:1"], weight: 100}\n',
        encoding="utf-8",
    )
    return ["--config", str(routes), "--redis-url", "redis://127.0.0.1:1/0"]


def test_durations_default_and_read(args: list[str]) -> None:
    assert (from_args(args, ENV).rollout_interval_s, from_args(args, ENV).lease_s) == (10.0, 10.0)
    process = from_args(args, {**ENV, "SPLITGATE_ROLLOUT_INTERVAL": "2s", "SPLITGATE_LEASE": "30s"})
    assert (process.rollout_interval_s, process.lease_s) == (2.0, 30.0)
    assert from_args(args, ENV).retention_s == 30 * 86400.0
    assert from_args(args, {**ENV, "SPLITGATE_ROLLOUT_RETENTION": "7d"}).retention_s == 7 * 86400.0


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("SPLITGATE_LEASE", "soon", "cannot read 'soon' as a duration"),
        ("SPLITGATE_LEASE", "10ms", "outside 1s to 10m"),
        ("SPLITGATE_LEASE", "0", "outside 1s to 10m"),
        ("SPLITGATE_ROLLOUT_INTERVAL", "-5s", "SPLITGATE_ROLLOUT_INTERVAL"),
        ("SPLITGATE_ROLLOUT_INTERVAL", "2 days", "outside 100ms to 1h"),
        ("SPLITGATE_ROLLOUT_RETENTION", "forever", "cannot read 'forever' as a duration"),
        ("SPLITGATE_ROLLOUT_RETENTION", "10m", "outside 1h to 3650d"),
    ],
)
def test_a_bad_duration_names_the_variable(
    args: list[str], name: str, value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        from_args(args, {**ENV, name: value})
    message = str(error.value)
    assert message.startswith(f"{name}: ") and reason in message and "\n" not in message
    monkeypatched = {**ENV, name: value}
    with pytest.MonkeyPatch.context() as mp:
        for key, val in monkeypatched.items():
            mp.setenv(key, val)
        assert main(args) == 2  # a usage error, not a traceback
    assert name in capsys.readouterr().err


BAD = {
    "SPLITGATE_CONFIG": "/nonexistent/routes.yaml",
    "SPLITGATE_REDIS_URL": "http://127.0.0.1:6379",
    "SPLITGATE_REDIS_WAIT_REPLICAS": "all",
    "SPLITGATE_CONTROL_LISTEN": "8081",
    "SPLITGATE_ENVIRONMENTS": "/nonexistent/environments.yaml",
    "SPLITGATE_LOG_LEVEL": "loud",
    "SPLITGATE_ADMIN_TOKEN": "too-short",
    "SPLITGATE_ROLLOUT_INTERVAL": "often",
    "SPLITGATE_ROLLOUT_RETENTION": "1m",
    "SPLITGATE_LEASE": "abc",
    "SPLITGATE_WEBHOOKS": "ftp://hooks.example",
    "SPLITGATE_REDIS_SENTINEL_PASSWORD": "pw",  # with a URL that is not Sentinel's
}
"""A bad value for every setting whose format can be broken."""
ANY_STRING = {
    "SPLITGATE_REDIS_NAMESPACE",
    "SPLITGATE_INSTANCE",
    "SPLITGATE_WEBHOOK_SECRET",
    "SPLITGATE_SIGNING_KEY",
}
ENTRIES = {e.env: e for e in ControlProcessSettings.entries()}
PATHS = {"SPLITGATE_CONFIG", "SPLITGATE_ENVIRONMENTS"}
"""A file that cannot be read is named by its path (and, in the file, by line and field)."""


def test_every_setting_has_a_bad_value_below() -> None:
    assert set(BAD) | ANY_STRING == set(ENTRIES)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``os.environ`` without the developer's own ``SPLITGATE_*`` settings."""
    for name in list(os.environ):
        if name.startswith("SPLITGATE_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("name", "via"),
    [
        (n, via)
        for n in sorted(BAD)
        for via in ("variable", "flag")
        if via == "variable" or ENTRIES[n].flag
    ],
)
def test_a_bad_value_is_one_line_naming_it_and_exit_2(
    args: list[str],
    name: str,
    via: str,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry, value = ENTRIES[name], BAD[name]
    flag_set = {args[i]: args[i + 1] for i in range(0, len(args), 2)}
    if via == "flag":
        assert entry.flag is not None
        flag_set[entry.flag] = value
        named = entry.flag
    else:
        flag_set.pop(entry.flag or "", None)
        clean_env.setenv(name, value)
        named = name
    for key, val in ENV.items():
        if key != name:
            clean_env.setenv(key, val)
    assert main([item for pair in flag_set.items() for item in pair]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("splitgate control: ")
    assert value in lines[0] if name in PATHS else named in lines[0]
    assert "Traceback" not in lines[0]


def test_the_token_is_never_echoed(args: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        from_args(args, {"SPLITGATE_ADMIN_TOKEN": "hunter2"})
    assert "hunter2" not in str(error.value)
    assert str(error.value).startswith("SPLITGATE_ADMIN_TOKEN: ")


def test_missing_settings_are_named_all_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        from_args([], {})
    assert [p.split(" is required")[0] for p in error.value.problems] == [
        "--config PATH or SPLITGATE_CONFIG",
        "--redis-url URL or SPLITGATE_REDIS_URL",
        "SPLITGATE_ADMIN_TOKEN",
    ]


def test_every_setting_is_read_from_its_flag_and_its_variable(args: list[str]) -> None:
    env = {
        **ENV,
        "SPLITGATE_CONTROL_LISTEN": ":9000",
        "SPLITGATE_REDIS_NAMESPACE": "ns",
        "SPLITGATE_INSTANCE": "cp-1",
        "SPLITGATE_WEBHOOKS": "https://a.example/h, https://b.example/h",
        "SPLITGATE_WEBHOOK_SECRET": "w",
        "SPLITGATE_SIGNING_KEY": "k",
        "SPLITGATE_LOG_LEVEL": "warning",
    }
    process = from_args(args, env)
    assert (process.host, process.port, process.namespace) == ("0.0.0.0", 9000, "ns")
    assert process.webhooks == ("https://a.example/h", "https://b.example/h")
    assert (process.instance, process.webhook_secret, process.signing_key) == ("cp-1", b"w", b"k")
    assert process.log_level == "WARNING"
    flags = ["--listen", "127.0.0.1:9001", "--lease", "1m", "--rollout-interval", "500ms"]
    process = from_args([*args, *flags, "--webhooks", "https://c.example/h"], env)
    assert (process.port, process.lease_s, process.rollout_interval_s) == (9001, 60.0, 0.5)
    assert process.webhooks == ("https://c.example/h",)


def test_defaults(args: list[str]) -> None:
    process = from_args(args, ENV)
    assert (process.host, process.port, process.namespace) == ("127.0.0.1", 8081, "splitgate")
    assert (process.signing_key, process.webhook_secret, process.webhooks) == (b"", b"", ())
    assert process.redis_url == "redis://127.0.0.1:1/0"
    assert process.environments.environments  # the shipped file


def test_the_proxys_listen_variable_does_not_move_the_admin_api(args: list[str]) -> None:
    # Both planes often share one environment: SPLITGATE_LISTEN is the proxy's alone.
    process = from_args(args, {**ENV, "SPLITGATE_LISTEN": "127.0.0.1:9999"})
    assert process.port == 8081
