"""The settings base: one model gives the flags, the variables, the errors and the docs rows."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic_settings import SettingsConfigDict

from config.loader import ConfigError
from config.process_settings import FlagParser, ProcessSettings, setting
from config.setting_formats import LISTEN, LOG_LEVEL, SECRET, SWITCH, duration, span, text


class Example(ProcessSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")

    listen: Annotated[tuple[str, int], LISTEN] = setting("where to serve", "127.0.0.1:1")
    lease: Annotated[float, duration(1, 600)] = setting("the lease", "10s")
    pubsub: Annotated[bool, SWITCH] = setting("listen for changes", "on")
    log_level: Annotated[str, LOG_LEVEL] = setting("verbosity", "info")
    name: Annotated[str | None, text("NAME")] = setting(
        "a name", env="OTHER_NAME", shown="the host"
    )
    token: Annotated[str, SECRET] = setting("a secret", required=True)


ENV = {"EXAMPLE_TOKEN": "s3cret"}


def load(argv: list[str], env: dict[str, str]) -> Example:
    parser = FlagParser(prog="example")
    Example.add_flags(parser)
    return Example.load(vars(parser.parse_args(argv)), env)


def test_defaults_go_through_their_parser() -> None:
    settings = load([], ENV)
    assert (settings.listen, settings.lease, settings.pubsub) == (("127.0.0.1", 1), 10.0, True)
    assert (settings.log_level, settings.name, settings.token) == ("INFO", None, "s3cret")


def test_a_flag_wins_over_its_variable_and_an_empty_value_is_unset() -> None:
    env = {**ENV, "EXAMPLE_LEASE": "30s", "EXAMPLE_PUBSUB": "off", "EXAMPLE_LOG_LEVEL": ""}
    settings = load(["--lease", "2m"], env)
    assert (settings.lease, settings.pubsub, settings.log_level) == (120.0, False, "INFO")
    assert load(["--lease", ""], env).lease == 30.0


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_LEASE", "not a duration")
    monkeypatch.setenv("EXAMPLE_TOKEN", "from the process")
    assert load([], ENV).lease == 10.0
    assert Example.model_validate({"token": "t"}).lease == 10.0


def test_entries_name_flag_variable_format_and_default() -> None:
    rows = {e.name: e for e in Example.entries()}
    assert (rows["lease"].flag, rows["lease"].env, rows["lease"].default) == (
        "--lease",
        "EXAMPLE_LEASE",
        "`10s`",
    )
    assert rows["lease"].format.text == "duration, 1s to 10m"
    assert (rows["name"].env, rows["name"].default) == ("OTHER_NAME", "the host")
    assert (rows["token"].flag, rows["token"].default) == (None, "required")
    assert load([], {**ENV, "OTHER_NAME": "n"}).name == "n"


def test_a_secret_has_no_flag() -> None:
    with pytest.raises(ConfigError, match="unrecognized arguments: --token"):
        load(["--token", "x"], ENV)


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        ([], {"EXAMPLE_LEASE": "soon"}, "EXAMPLE_LEASE: cannot read 'soon' as a duration"),
        (["--lease", "0"], {}, "--lease: '0' is outside 1s to 10m"),
        ([], {"EXAMPLE_PUBSUB": "maybe"}, "EXAMPLE_PUBSUB: 'maybe': expected on or off"),
        (["--log-level", "loud"], {}, "--log-level: 'loud' is not a log level"),
        ([], {"EXAMPLE_LISTEN": "80"}, "EXAMPLE_LISTEN: '80': expected HOST:PORT"),
    ],
)
def test_a_bad_value_is_one_line_naming_where_it_came_from(
    argv: list[str], env: dict[str, str], line: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(argv, {**ENV, **env})
    assert caught.value.problems == [caught.value.problems[0]]
    assert caught.value.problems[0].startswith(line)


def test_every_problem_at_once_and_a_missing_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load(["--lease", "x"], {"EXAMPLE_PUBSUB": "x"})
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "--lease",
        "EXAMPLE_PUBSUB",
        "EXAMPLE_TOKEN is required",
    ]


def test_usage_mistakes_raise_instead_of_exiting() -> None:
    with pytest.raises(ConfigError, match="expected one argument"):
        load(["--lease"], ENV)


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (600, "10m"),
        (0.05, "50ms"),
        (0.1, "100ms"),
        (3600, "1h"),
        (3650 * 86400, "3650d"),
        (1.5, "1500ms"),
    ],
)
def test_span(seconds: float, written: str) -> None:
    assert span(seconds) == written


def test_variables_are_read_by_their_upper_case_name_only() -> None:
    assert Example.from_env({"EXAMPLE_LEASE": "1m"}) == {"lease": "1m"}
    assert Example.from_env({"example_lease": "1m", "Example_Lease": "1m"}) == {}


@pytest.mark.parametrize(
    "given, level", [("warn", "WARNING"), ("Critical", "ERROR"), (" debug ", "DEBUG")]
)
def test_the_log_level_names_earlier_versions_took_still_start(given: str, level: str) -> None:
    assert load([], {**ENV, "EXAMPLE_LOG_LEVEL": given}).log_level == level
