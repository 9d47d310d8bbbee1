"""``splitgate rollout`` following a rollout into a log: a line per change, the exit status of
its end, fed a scripted series of records through a scripted ``AdminApi``."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from control import cli, rollout_cli
from tests.control.view_records import record


def script(*statuses: str) -> Iterator[dict[str, Any]]:
    """Records with these statuses, the last one repeated for ever."""
    r = record()
    for status in statuses:
        r = copy.deepcopy(r)
        r["state"]["status"] = status
        yield r
    while True:
        yield copy.deepcopy(r)


class ScriptedApi:
    """Serves ``GET /v1/rollouts/ID`` from a script, each record as the runner's last look
    left it with every replica applying the phase's weights."""

    def __init__(self, records: Iterator[dict[str, Any]]) -> None:
        self._records = records
        self.paths: list[str] = []

    def call(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        self.paths.append(f"{method} {path}")
        return {**next(self._records), "acked": True}

    def send_text(self, method: str, path: str, text: str, source: str, **options: Any) -> Any:
        raise AssertionError("a rollout being followed sends no document")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout_cli, "sleep_until", lambda deadline: None)


@pytest.mark.parametrize(
    ("statuses", "code", "last"),
    [
        (["running", "running", "awaiting_approval", "running", "promoted"], 0, "PROMOTED"),
        (["running", "rolled_back"], 1, "ROLLED BACK"),
        (["running", "aborted"], 1, "ABORTED"),
    ],
)
def test_a_log_gets_a_line_per_change_and_the_end_status(
    capsys: pytest.CaptureFixture[str], statuses: list[str], code: int, last: str
) -> None:
    api = ScriptedApi(script(*statuses))
    assert rollout_cli.follow(api, "chat-1a2b3c4d", timeout=60) == code
    assert set(api.paths) == {"GET /v1/rollouts/chat-1a2b3c4d"}
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line.startswith("chat-1a2b3c4d: ")]
    # Repeated looks at the same state print nothing new.
    assert len(heads) == len([s for i, s in enumerate(statuses) if statuses[i - 1 : i] != [s]])
    assert last in out and "\x1b" not in out and "acks from every" not in out


def test_still_going_at_the_timeout_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert rollout_cli.follow(ScriptedApi(script("running")), "chat-1a2b3c4d", timeout=0) == 3
    assert "chat-1a2b3c4d is still running after 0 s" in capsys.readouterr().err


def test_watch_needs_an_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rollout", "status", "--watch"], env={"SPLITGATE_ADMIN_TOKEN": "t"}) == 2
    assert "give its ID" in capsys.readouterr().err


class RecordingApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, Any]] = []

    def call(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        self.calls.append((method, path, body, options.get("headers")))
        return record()

    def send_text(self, method: str, path: str, text: str, source: str, **options: Any) -> Any:
        raise AssertionError("a command sends no document")


def test_a_command_carries_its_reason_and_actor(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["rollout", "approve", "chat-1a2b3c4d", "--reason", "p95 ok", "--actor", "alice"]
    args = cli.parser({"SPLITGATE_ADMIN_TOKEN": "t"}).parse_args(argv)
    api = RecordingApi()
    assert rollout_cli.run(api, args) == 0
    assert api.calls == [
        (
            "POST",
            "/v1/rollouts/chat-1a2b3c4d/approve",
            {"reason": "p95 ok"},
            {"X-Splitgate-Actor": "alice"},
        )
    ]
    args = cli.parser({"SPLITGATE_ADMIN_TOKEN": "t", "USER": "bob"}).parse_args(argv[:3])
    rollout_cli.run(api, args)
    assert api.calls[-1][2:] == ({}, {"X-Splitgate-Actor": "bob"})
