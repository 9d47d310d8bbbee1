"""Process settings: flags over environment, inline upstreams, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError
from proxy.settings import from_args, inline_config, parse_listen

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
