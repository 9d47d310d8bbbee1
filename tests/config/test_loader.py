"""Config files: the issue's minimal form loads; every mistake names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.durations import parse_duration
from config.loader import ConfigError, load_config

EXAMPLES = Path(__file__).parents[2] / "config" / "examples"

GOOD = """\
routes:
  - name: chat
    match: {path_prefix: /v1/}
    stickiness: [header:x-user-id, header:x-session-id, client_ip]
    tracks:
      - {name: stable, version: v1.0.0, upstreams: ["http://127.0.0.1:9001"], weight: 90}
      - {name: canary, version: v1.1.0, upstreams: ["http://127.0.0.1:9002"], weight: 10}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_minimal_form_from_the_issue_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    route = config.routes[0]
    assert [(t.name, t.weight) for t in route.tracks] == [("stable", 90), ("canary", 10)]
    assert route.baseline_name() == "stable"
    assert route.stickiness == ["header:x-user-id", "header:x-session-id", "client_ip"]


def test_conversation_stickiness_loads(tmp_path: Path) -> None:
    text = GOOD.replace("header:x-session-id", "conversation, conversation:X-Thread-Id")
    route = load_config(write(tmp_path, text)).routes[0]
    assert route.stickiness == [
        "header:x-user-id",
        "conversation",
        "conversation:x-thread-id",
        "client_ip",
    ]


@pytest.mark.parametrize("name", ["routes.yaml", "full.yaml", "flags.yaml"])
def test_shipped_routing_examples_load(name: str) -> None:
    load_config(EXAMPLES / name)


def test_every_shipped_example_is_tested() -> None:
    shipped = {p.name for p in EXAMPLES.glob("*.yaml")} | {
        f"plans/{p.name}" for p in (EXAMPLES / "plans").glob("*.yaml")
    }
    assert shipped == {
        "routes.yaml",
        "full.yaml",
        "flags.yaml",
        "environments.yaml",
        "plans/canary.yaml",
        "plans/blue-green.yaml",
        "plans/big-bang.yaml",
        "plans/ab-test.yaml",
        "plans/demo-canary.yaml",
        "plans/demo-bad-canary.yaml",
        "plans/canary-cost.yaml",
        "plans/canary-shadow.yaml",
    }


@pytest.mark.parametrize(
    ("change", "line", "field", "reason"),
    [
        (
            ("weight: 10}", "weight: 15}"),
            5,
            "routes[0].tracks",
            "weights must add up to 100 (got 105",
        ),
        (
            ("weight: 10}", "weight: 10.001}"),
            7,
            "routes[0].tracks[1].weight",
            "at most two decimals",
        ),
        (("weight: 90}", "weight: -5}"), 6, "routes[0].tracks[0].weight", "between 0 and 100"),
        (
            ("http://127.0.0.1:9002", "ftp://127.0.0.1:9002"),
            7,
            "routes[0].tracks[1].upstreams[0]",
            "http:// or https://",
        ),
        (
            ("http://127.0.0.1:9002", "http://user:pw@h:1"),
            7,
            "routes[0].tracks[1].upstreams[0]",
            "credentials",
        ),
        (
            ("http://127.0.0.1:9002", "http://:99999"),
            7,
            "routes[0].tracks[1].upstreams[0]",
            "needs a host",
        ),
        (("name: canary", "name: stable"), 5, "routes[0].tracks", "track 'stable' is listed twice"),
        (("stickiness:", "stikiness:"), 4, "routes[0].stikiness", "unknown field"),
        (
            ("path_prefix: /v1/", "path_prefix: v1/"),
            3,
            "routes[0].match.path_prefix",
            "starts with '/'",
        ),
        (("header:x-user-id,", "body:user,"), 4, "routes[0].stickiness[0]", "stickiness source"),
        (("header:x-user-id,", "conversations,"), 4, "routes[0].stickiness[0]", "'conversation'"),
        (
            ("header:x-user-id,", "conversation:x thread,"),
            4,
            "routes[0].stickiness[0]",
            "not a valid HTTP header name",
        ),
        (("name: chat", "name: Chat Route"), 2, "routes[0].name", "lower-case"),
    ],
)
def test_mistakes_name_file_line_field_and_reason(
    tmp_path: Path, change: tuple[str, str], line: int, field: str, reason: str
) -> None:
    problems = errors_of(tmp_path, GOOD.replace(*change, 1))
    path = tmp_path / "routes.yaml"
    assert any(p.startswith(f"{path}:{line}: {field}:") and reason in p for p in problems), problems


def test_missing_required_field(tmp_path: Path) -> None:
    problems = errors_of(tmp_path, GOOD.replace("version: v1.1.0, ", ""))
    assert any(
        ":7: routes[0].tracks[1].version: required field is missing" in p for p in problems
    ), problems


def test_duplicate_key_is_refused_not_collapsed(tmp_path: Path) -> None:
    problems = errors_of(
        tmp_path,
        GOOD.replace(
            "    match: {path_prefix: /v1/}\n", "    match: {path_prefix: /v1/}\n    name: other\n"
        ),
    )
    assert problems == [f"{tmp_path / 'routes.yaml'}:4: routes[0].name: key given twice"]


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    problems = errors_of(tmp_path, GOOD.replace("tracks:", "tracks: [", 1))
    assert problems[0].startswith(f"{tmp_path / 'routes.yaml'}:")
    assert "not valid YAML" in problems[0]


def test_empty_missing_and_non_mapping_files(tmp_path: Path) -> None:
    assert "the file is empty" in errors_of(tmp_path, "")[0]
    assert "top level must be a mapping" in errors_of(tmp_path, "- a\n- b\n")[0]
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.yaml")


def test_unknown_proxy_setting_and_bad_duration(tmp_path: Path) -> None:
    problems = errors_of(tmp_path, "proxy:\n  timeouts: {idle: 5 fortnights, conect: 3}\n" + GOOD)
    assert any(":2: proxy.timeouts.idle: unknown time unit 'fortnights'" in p for p in problems), (
        problems
    )
    assert any(":2: proxy.timeouts.conect: unknown field" in p for p in problems), problems


def test_same_match_twice_is_refused(tmp_path: Path) -> None:
    second = GOOD.split("routes:\n", 1)[1].replace("name: chat", "name: chat2")
    problems = errors_of(tmp_path, GOOD + second)
    assert any("same match as an earlier route" in p for p in problems), problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (5, 5.0),
        (1.5, 1.5),
        ("300ms", 0.3),
        ("5s", 5.0),
        ("5m", 300.0),
        ("30 minutes", 1800.0),
        ("2 hours", 7200.0),
        ("1d", 86400.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-1", "5 parsecs", "abc", True, None, "nan"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
