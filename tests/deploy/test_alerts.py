"""The alert rules load in promtool and pass their unit tests (deploy/prometheus/alerts_test.yaml);
those about users' traffic leave shadow copies out."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.prometheus import ALERTS, MODE_FAMILIES, alert_rules, binary, selectors

TESTS = ALERTS.with_name("alerts_test.yaml")


def promtool(*args: str) -> str:
    done = subprocess.run(
        [binary("promtool"), *args],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_rules_check() -> None:
    assert "SUCCESS" in promtool("check", "rules", ALERTS.name)


def test_rules_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", TESTS.name)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_says_how_bad_and_what(rule: dict[str, object]) -> None:
    assert rule.get("for"), "a rule without `for` pages on one bad evaluation"
    labels = rule.get("labels")
    assert isinstance(labels, dict) and labels.get("severity") in ("warning", "critical")
    annotations = rule.get("annotations")
    assert isinstance(annotations, dict)
    assert {"summary", "description"} <= annotations.keys()
    assert "$labels." in str(annotations["description"])


def test_every_alert_is_unit_tested() -> None:
    tested = TESTS.read_text()
    untested = [r["alert"] for r in alert_rules() if f"alertname: {r['alert']}" not in tested]
    assert untested == []


def test_alerts_on_traffic_count_users_requests_only() -> None:
    """Shadow copies never reach a user: every per-track family is read with mode="live"."""
    for rule in alert_rules():
        for metric, written in selectors(rule["expr"]):
            if metric.startswith(MODE_FAMILIES):
                assert 'mode="live"' in written, f"{rule['alert']}: {written}"
