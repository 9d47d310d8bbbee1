"""The command-line tools' shared parts: one tree whose admin options go before or after
the subcommand and whose every ``--help`` names their variables, errors and exit statuses,
the in-place redraw, and ``splitgate top``'s table. Over real processes:
tests/integration/test_terminal.py; against a real control plane: test_admin_client.py."""

from __future__ import annotations

import argparse
import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from control import cli, top
from control.admin_client import AdminClient, ApiError, BadAnswer, Unreachable
from control.screen import Screen
from control.weights_cli import show
from splitgate.cli import main as splitgate_main
from tests.conftest import refused_url

ENV = {"SPLITGATE_ADMIN_TOKEN": "from-the-environment", "SPLITGATE_ADMIN_URL": "http://env:1"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["set", "chat", "stable=90", "canary=10", "--json"],
            ("http://env:1", "from-the-environment", True),
        ),
        (["--json", "set", "chat", "stable=90"], ("http://env:1", "from-the-environment", True)),
        (
            ["get", "chat", "--token", "t2", "--admin-url", "http://x:2"],
            ("http://x:2", "t2", False),
        ),
        (
            ["--token", "t1", "--admin-url", "http://y:3", "get", "chat"],
            ("http://y:3", "t1", False),
        ),
    ],
)
def test_admin_options_go_before_or_after_the_subcommand(
    argv: list[str], expected: tuple[str, str, bool]
) -> None:
    args = cli.parser(ENV).parse_args(["weights", *argv])
    assert (args.admin_url, args.token, args.json) == expected


def test_set_keeps_its_weights_when_json_follows_them() -> None:
    args = cli.parser(ENV).parse_args(
        ["weights", "set", "chat", "stable=90", "canary=10", "--json"]
    )
    assert args.weights == ["stable=90", "canary=10"]


def test_rollout_options_follow_the_subcommand_too() -> None:
    tree = cli.parser(ENV)
    args = tree.parse_args(["rollout", "status", "r1", "--watch", "--token", "t3"])
    assert (args.id, args.watch, args.token, args.admin_url) == ("r1", True, "t3", "http://env:1")
    assert tree.parse_args(["flags", "list"]).token == "from-the-environment"
    flags = tree.parse_args(["flags", "get", "beta", "--json", "--token", "t4"])
    assert (flags.name, flags.json, flags.token, flags.admin_url) == (
        "beta",
        True,
        "t4",
        "http://env:1",
    )


def test_a_later_admin_option_wins() -> None:
    argv = ["flags", "--token", "early", "--admin-url", "http://a:1", "list", "--token", "late"]
    args = cli.parser(ENV).parse_args(argv)
    assert (args.token, args.admin_url, args.json) == ("late", "http://a:1", False)


def _branches(p: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield child
                yield from _branches(child)


def test_every_commands_help_names_the_admin_variables() -> None:
    branches = {b.prog: b.format_help() for b in _branches(cli.parser({}))}
    assert {"splitgate weights set", "splitgate rollout check", "splitgate flags explain"} < set(
        branches
    )
    assert len(branches) == 6 + 2 + 9 + 8 + 4  # the commands, then each one's subcommands
    for prog, text in branches.items():
        flat = " ".join(text.split())
        assert "--admin-url URL" in flat and "env SPLITGATE_ADMIN_URL" in flat, prog
        assert "--token TOKEN" in flat and "env SPLITGATE_ADMIN_TOKEN" in flat, prog
        assert "default http://127.0.0.1:8081" in flat, prog


@pytest.mark.parametrize(
    "argv",
    [["weights", "--help"], ["rollout", "start", "--help"], ["flags", "list", "-h"], ["top", "-h"]],
)
def test_help_from_the_entry_point(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        splitgate_main(argv)
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert "SPLITGATE_ADMIN_URL" in out and "SPLITGATE_ADMIN_TOKEN" in out


def test_the_token_is_never_shown_in_help() -> None:
    env = {**ENV, "SPLITGATE_ADMIN_TOKEN": "s3cret-token"}
    assert all("s3cret" not in b.format_help() for b in _branches(cli.parser(env)))


def test_a_missing_token_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["weights", "get", "chat"], env={}) == 2
    assert capsys.readouterr().err == (
        "splitgate weights: no token: pass --token or set SPLITGATE_ADMIN_TOKEN\n"
    )


def test_splitgate_proxy_does_not_import_the_control_plane() -> None:
    script = (
        "import sys\n"
        "from splitgate.cli import main\n"
        "try:\n    main(['proxy', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('imported:', sorted(m for m in sys.modules if m.split('.')[0] == 'control'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "imported: []"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert splitgate_main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("splitgate ") and out.strip().split(" ")[1][0].isdigit()


def test_usage_names_top(capsys: pytest.CaptureFixture[str]) -> None:
    assert splitgate_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "\n  top " in out
    assert "SPLITGATE_ADMIN_URL" in out and "SPLITGATE_ADMIN_TOKEN" in out


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 1


def _raise(exc: BaseException) -> Any:
    def work() -> int:
        raise exc

    return work


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (
            ApiError(422, {"errors": [{"field": "weights", "reason": "bad"}]}),
            1,
            "422 weights: bad",
        ),
        (Unreachable("connection refused"), 2, "cannot reach the admin API at http://a:1"),
        (
            ApiError(401, {"error": {"message": "missing or wrong bearer token"}}),
            1,
            "401 missing or wrong bearer token (check --token or SPLITGATE_ADMIN_TOKEN)",
        ),
        (
            BadAnswer("http://a:1/v1/routes answered 200 with something other than JSON"),
            2,
            "something other than JSON",
        ),
        (ValueError("'x': expected TRACK=PERCENT"), 2, "expected TRACK=PERCENT"),
        (KeyboardInterrupt(), 130, ""),
    ],
)
def test_guarded_turns_errors_into_a_message_and_a_status(
    exc: BaseException, code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.guarded("splitgate x", "http://a:1", _raise(exc)) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if not message:
        assert err == ""


def test_a_broken_pipe_on_stdout_is_not_the_api_being_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dup2: list[int] = []
    monkeypatch.setattr(os, "dup2", lambda fd, to: dup2.append(to))
    monkeypatch.setattr(sys, "stdout", FakeTerminal())
    assert cli.guarded("splitgate x", "http://a:1", _raise(BrokenPipeError())) == cli.PIPE_CLOSED
    assert capsys.readouterr().err == ""
    assert dup2 == [1]  # stdout now goes to /dev/null: the flush at exit cannot fail again


def test_a_refused_connection_is_unreachable() -> None:
    with (
        AdminClient(refused_url(), "t") as api,
        pytest.raises(Unreachable, match=r"^connection refused$"),
    ):
        api.call("GET", "/v1/routes")


def test_the_screen_rewrites_its_previous_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "20")
    monkeypatch.setenv("LINES", "10")
    out = FakeTerminal()
    screen = Screen(out)
    screen.draw(["first", "second line that is longer than the terminal"])
    first = out.getvalue()
    screen.draw(["third"])
    screen.close()
    second = out.getvalue()[len(first) :]
    assert first.startswith("\x1b[?25l") and "second line that is\x1b[K\n" in first
    assert second.startswith("\r\x1b[2Athird\x1b[K\n\x1b[J")  # up over both, clear the rest
    assert second.endswith("\x1b[?25h")


def test_prose_is_wrapped_and_the_wrapped_lines_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "21")
    monkeypatch.setenv("LINES", "10")
    out = FakeTerminal()
    screen = Screen(out, wrap=True)
    screen.draw(["  error_rate pass: 0 % over 1,234 requests, below 5 %"])
    first = out.getvalue()
    screen.draw(["x"])
    lines = first.removeprefix("\x1b[?25l").split("\x1b[K\n")[:-1]
    # "0 %" stays whole: a figure is not parted from its unit.
    assert lines == [
        "  error_rate pass:",
        "      0 % over 1,234",
        "      requests,",
        "      below 5 %",
    ]
    assert out.getvalue()[len(first) :].startswith("\r\x1b[4Ax")


def test_the_screen_never_draws_more_lines_than_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "4")
    out = FakeTerminal()
    Screen(out).draw([f"line {i}" for i in range(10)])
    assert out.getvalue().count("\n") == 3


METRICS = {
    "route": "chat",
    "window_s": 60,
    "generation": 4,
    "tracks": [
        {
            "track": "canary",
            "version": "v1.1.0",
            "weight": 10,
            "requests": 120,
            "error_rate": 0.025,
            "latency_ms": {"p50": 100.0, "p95": 1840.0, "p99": math.inf},
            "ttfb_ms": {"p50": 20.0, "p95": 310.0, "p99": 400.0},
            "tokens_per_request": 512.4,
        },
        {
            "track": "stable",
            "version": "v1.0.0",
            "weight": 90,
            "requests": 1080,
            "error_rate": 0.001,
            "latency_ms": {"p50": 90.0, "p95": math.inf, "p99": math.inf},
            "ttfb_ms": {"p50": None, "p95": None, "p99": None},
            "tokens_per_request": None,
        },
    ],
    "sample_ratio": {"mismatch": True, "p_value": 0.0002},
}
ROUTES = {
    "chat": {
        "tracks": [
            {"name": "stable", "version": "v1.0.0", "weight": 90},
            {"name": "canary", "version": "v1.1.0", "weight": 10},
            {"name": "green", "version": "v2", "weight": 0},
        ]
    }
}


def test_top_table() -> None:
    lines = top.table([METRICS], ROUTES)
    assert lines[0].split() == [
        "ROUTE", "TRACK", "VERSION", "WEIGHT", "REQ/S", "ERRORS", "P95", "TTFB", "P95", "TOK/REQ"
    ]  # fmt: skip
    canary, stable, green = lines[1:4]
    assert canary.split() == ["chat", "canary", "v1.1.0", "10", "%", "2.0", "2.50", "%", "1,840", "ms", "310", "ms", "512"]  # fmt: skip
    assert "over the top bucket" in stable and "0.10 %" in stable and "18.0" in stable
    assert green.split()[:6] == ["chat", "green", "v2", "0", "%", "0.0"]
    assert "sample ratio p = 0.0002" in lines[4]
    # Figures are right-aligned under their heading.
    assert canary.index(" 2.0 ") + 4 == lines[0].index("REQ/S") + len("REQ/S")


def test_a_replica_at_the_same_generation_with_other_content_is_behind() -> None:
    route = {"name": "chat", "tracks": []}
    replicas = {
        "a": {"generation": 12, "digest": "d12"},
        "b": {"generation": 12, "digest": "lost"},  # a write Redis lost in a failover
        "c": {"generation": 11, "digest": "d11"},
        "d": {"generation": 12},  # a proxy from before digests: judged by its generation
    }
    assert show(route, 12, replicas, "d12").endswith("replicas: 4 live, 2 behind (b, c)")
    assert show(route, 12, replicas).endswith("replicas: 4 live, 1 behind (c)")
