"""docs/SETTINGS.md lists every setting of every process as its model declares it, and no other:
flag, variable, format and default cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.process_settings import Entry, ProcessSettings
from control.settings import ControlProcessSettings
from loadtests.settings import OPTIONS, LoadtestSettings
from proxy.settings import ProxyProcessSettings

DOC = Path(__file__).resolve().parents[1] / "docs" / "SETTINGS.md"
SECTIONS: dict[str, type[ProcessSettings]] = {
    "## Data plane: `splitgate proxy`": ProxyProcessSettings,
    "## Control plane: `splitgate control`": ControlProcessSettings,
    "## The load test: `locust -f loadtests/locustfile.py`": LoadtestSettings,
}
NOT_SETTINGS = {"`SSL_CERT_FILE`, `SSL_CERT_DIR`", "—"}
"""Rows the models do not declare: OpenSSL's variables, and ``--upstream``/``--weight``."""


def table(heading: str) -> dict[str, list[str]]:
    """The section's rows by their environment cell: ``[flag, environment, format, default]``."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    rows = {}
    for line in text[start : end if end > 0 else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 5 and cells[0] not in ("flag", "---"):
            rows[cells[1]] = cells[:4]
    return rows


def expected(entry: Entry) -> list[str]:
    flag = f"`{entry.flag} {entry.format.metavar}`" if entry.flag else "—"
    return [flag, f"`{entry.env}`", entry.format.text, entry.default]


@pytest.mark.parametrize("heading", SECTIONS)
def test_every_setting_is_documented_as_declared(heading: str) -> None:
    rows = table(heading)
    for entry in SECTIONS[heading].entries():
        assert f"`{entry.env}`" in rows, f"docs/SETTINGS.md, {heading}: no row for {entry.env}"
        flag, env, fmt, default = rows[f"`{entry.env}`"]
        want = expected(entry)
        assert (flag, env) == tuple(want[:2]), entry.env
        # The format and default cells may go on to explain; they start as declared.
        assert fmt.startswith(want[2]), f"{entry.env}: format {fmt!r}, declared {want[2]!r}"
        assert default.startswith(want[3]), (
            f"{entry.env}: default {default!r}, declared {want[3]!r}"
        )


@pytest.mark.parametrize("heading", SECTIONS)
def test_the_docs_list_no_setting_the_model_lacks(heading: str) -> None:
    declared = {f"`{e.env}`" for e in SECTIONS[heading].entries()}
    assert set(table(heading)) - declared - NOT_SETTINGS == set()


@pytest.mark.parametrize("model", [ProxyProcessSettings, ControlProcessSettings, LoadtestSettings])
def test_each_variable_is_the_one_pydantic_settings_reads(model: type[ProcessSettings]) -> None:
    """``entries()`` derives each variable's name; the environment source must agree."""
    for entry in model.entries():
        assert model.from_env({entry.env: "x"}) == {entry.name: "x"}, entry.env


def test_locust_registers_the_declared_options() -> None:
    assert [(o.flag, o.env, o.default) for o in OPTIONS] == [
        (e.flag, e.env, e.typed) for e in LoadtestSettings.entries()
    ]
