"""deploy/compose.yaml against the Compose specification's schema and against the code; the
GitHub Actions example of docs/DEPLOY.md against the workflow schema (both schemas as
check-jsonschema vendors them: offline)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from config.listen import parse_listen
from config.loader import load_routing_file
from config.process_settings import ProcessSettings
from control.settings import ControlProcessSettings
from proxy.settings import ProxyProcessSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
PLANES: dict[str, type[ProcessSettings]] = {
    "proxy": ProxyProcessSettings,
    "control": ControlProcessSettings,
}


def vendored(name: str) -> dict[str, Any]:
    schemas = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(schemas.joinpath(f"{name}.json").read_text())
    return schema


def check(document: Any, schema: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def image_env() -> dict[str, str]:
    """The Dockerfile's ENV, which every splitgate service of the file runs with."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    block = re.search(r"^ENV (.+)$", text, re.M)
    assert block is not None
    return dict(pair.split("=", 1) for pair in block.group(1).split())


def test_the_compose_file_follows_the_compose_specification() -> None:
    check(compose(), vendored("compose-spec"))


def test_every_file_the_compose_file_mounts_is_in_the_repository() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source}"


def test_splitgate_services_run_commands_and_settings_their_plane_takes() -> None:
    services = compose()["services"]
    env = image_env()
    planes = set()
    for name, service in services.items():
        if service.get("image", "").split(":")[0] != "splitgate" or "entrypoint" in service:
            continue
        plane = service["command"][0]
        planes.add(plane)
        known = {e.env for e in PLANES[plane].entries()}
        given = set(service.get("environment", {}))
        assert given <= known, f"{name}: {given - known}"
        host_ports = {int(p.split(":")[-1]) for p in service.get("ports", [])}
        listen = env["SPLITGATE_LISTEN" if plane == "proxy" else "SPLITGATE_CONTROL_LISTEN"]
        assert host_ports == {parse_listen(listen)[1]}, name
    assert planes == {"proxy", "control"}
    load_routing_file(DEPLOY / "compose" / "routes.yaml")


def test_prometheus_scrapes_the_ports_the_planes_serve_metrics_on() -> None:
    env = image_env()
    ops = parse_listen(env["SPLITGATE_OPS_LISTEN"])[1]
    admin = parse_listen(env["SPLITGATE_CONTROL_LISTEN"])[1]
    scrape = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in scrape["scrape_configs"]
    }
    services = compose()["services"]
    for target in targets["splitgate-proxy"]:
        host, port = target.split(":")
        assert services[host]["command"] == ["proxy"] and int(port) == ops
    assert targets["splitgate-control"] == [f"control:{admin}"]


def test_the_stop_grace_period_covers_the_drain() -> None:
    for name, service in compose()["services"].items():
        if service.get("command") == ["proxy"]:
            assert service["stop_grace_period"] == "40s", name


def test_the_github_actions_example_is_a_valid_workflow() -> None:
    text = (ROOT / "docs" / "DEPLOY.md").read_text()
    section = text[text.index("## A rollout from CI: GitHub Actions") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    workflow = yaml.safe_load(block.group(1))
    # PyYAML reads YAML 1.1, where the key `on` is the boolean true; GitHub reads YAML 1.2.
    workflow["on"] = workflow.pop(True)
    check(workflow, vendored("github-workflows"))
    run = workflow["jobs"]["rollout"]["steps"][-1]["run"]
    assert run.startswith("splitgate rollout start ") and "--wait" in run
