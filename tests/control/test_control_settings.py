"""The control plane's settings: a bad value is a one-line error that names it, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError
from control.__main__ import main
from control.settings import from_args

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
        ("SPLITGATE_LEASE", "10ms", "outside 1s to 600s"),
        ("SPLITGATE_LEASE", "0", "outside 1s to 600s"),
        ("SPLITGATE_ROLLOUT_INTERVAL", "-5s", "SPLITGATE_ROLLOUT_INTERVAL"),
        ("SPLITGATE_ROLLOUT_INTERVAL", "2 days", "outside 0.1s to 3600s"),
        ("SPLITGATE_ROLLOUT_RETENTION", "forever", "cannot read 'forever' as a duration"),
        ("SPLITGATE_ROLLOUT_RETENTION", "10m", "outside 3600s to 3650d"),
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
