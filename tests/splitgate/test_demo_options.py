"""The demo's options: backend ports, the plans it prints, and how it names the command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from config.loader import load_config
from config.plans import load_plan
from splitgate import demo


def test_load_flag_alone_means_twenty_requests_a_second() -> None:
    assert demo.parser().parse_args(["--load"]).load == 20.0
    assert demo.parser().parse_args(["--load", "50"]).load == 50.0
    assert demo.parser().parse_args([]).load is None


@pytest.mark.parametrize("text", ["9001,9002", "9001,9002,x", "9001,9001,9003", "0,1,2"])
def test_backend_ports_are_three_different_ports(text: str) -> None:
    with pytest.raises(ValueError, match="--backend-ports"):
        demo.parse_ports(text)


def test_routes_and_plans_follow_the_backend_ports(tmp_path: Path) -> None:
    config = demo.with_ports(load_config(str(demo.EXAMPLES / "routes.yaml")), (7001, 7002, 7003))
    upstreams = [u for t in config.routes[0].tracks for u in t.upstreams]
    assert upstreams == ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]
    good, bad = demo.plan_files((7001, 7002, 7003), tmp_path)
    assert load_plan(good).candidate.upstreams == ["http://127.0.0.1:7002"]  # type: ignore[union-attr]
    assert load_plan(bad).candidate.upstreams == ["http://127.0.0.1:7003"]  # type: ignore[union-attr]
    packaged = demo.plan_files(demo.DEFAULT_PORTS, tmp_path)
    assert all(p.is_absolute() and p.is_file() for p in packaged)
    assert [p.name for p in packaged] == ["demo-canary.yaml", "demo-bad-canary.yaml"]


def test_the_command_is_named_by_an_absolute_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "bin" / "splitgate"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["bin/splitgate", "demo"])
    assert demo.splitgate_command() == str(script.resolve())
    monkeypatch.setattr(sys, "argv", ["/somewhere/splitgate/__main__.py", "demo"])
    assert demo.splitgate_command() == f"{sys.executable} -m splitgate"
