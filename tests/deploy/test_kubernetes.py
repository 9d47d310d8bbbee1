"""deploy/kubernetes, checked offline: against the Kubernetes schemas (kubernetes-validate),
and against the code: every image, command, port, probe path, environment variable and value
is one that the proxy and the control plane accept."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.listen import parse_listen
from config.process_settings import ProcessSettings
from config.schema import Timeouts
from control.openapi import OPERATIONS
from control.settings import ControlProcessSettings
from control.settings import from_args as control_from_args
from proxy.settings import ProxyProcessSettings
from proxy.settings import from_args as proxy_from_args

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.31"
CRDS = {"ServiceMonitor"}
"""Kinds of the Prometheus operator: no schema in kubernetes-validate, checked by hand."""
OPENSSL = {"SSL_CERT_FILE", "SSL_CERT_DIR"}
PLANES: dict[str, tuple[type[ProcessSettings], Callable[[list[str], dict[str, str]], object]]] = {
    "proxy": (ProxyProcessSettings, proxy_from_args),
    "control": (ControlProcessSettings, control_from_args),
}


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(KUBE.rglob("*.yaml")):
        if path.name in ("kustomization.yaml", "routes.yaml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def kustomizations() -> list[Path]:
    return sorted(KUBE.rglob("kustomization.yaml"))


def workloads() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(plane, container, pod spec) of every splitgate container."""
    for _, doc in manifests():
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container["image"] == "splitgate":
                yield container["args"][0], container, spec


def secrets_example() -> dict[str, str]:
    lines = (KUBE / "secrets.env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the process would see it, with the example secrets."""
    secrets = secrets_example()
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            env[item["name"]] = secrets[item["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[item["name"]] = "pod-0"  # the downward API's pod name
    return env


@pytest.mark.parametrize(
    "path, doc",
    [pytest.param(p, d, id=f"{p.relative_to(KUBE)}:{d['kind']}") for p, d in manifests()],
)
def test_each_manifest_is_valid_for_kubernetes(path: Path, doc: dict[str, Any]) -> None:
    if doc["kind"] in CRDS:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert {e["port"] for e in doc["spec"]["endpoints"]} <= {"ops", "admin"}
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", kustomizations(), ids=lambda p: str(p.relative_to(KUBE)))
def test_every_file_a_kustomization_names_is_there(kustomization: Path) -> None:
    spec = yaml.safe_load(kustomization.read_text())
    here = kustomization.parent
    for resource in spec.get("resources", []):
        assert (here / resource).is_file(), resource
    for generator in spec.get("configMapGenerator", []):
        for name in generator.get("files", []):
            assert (here / name).is_file(), name
    for generator in spec.get("secretGenerator", []):
        assert generator["envs"] == ["secrets.env"]  # made from secrets.env.example
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for image in spec.get("images", []):
        assert (image["name"], image["newTag"]) == ("splitgate", version)


def test_the_example_secrets_are_the_ones_the_manifests_read() -> None:
    wanted = set()
    for _, container, _ in workloads():
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "splitgate-secrets"
                wanted.add(ref["key"])
    assert set(secrets_example()) == wanted
    assert (ROOT / ".gitignore").read_text().count("deploy/kubernetes/secrets.env") == 1


def test_each_container_runs_a_command_the_image_has_with_settings_it_accepts() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["splitgate"]' in dockerfile
    routes = str(KUBE / "routes.yaml")
    seen = set()
    for plane, container, _ in workloads():
        seen.add(plane)
        env = environment(container)
        assert env["SPLITGATE_CONFIG"] == "/etc/splitgate/routes.yaml"
        env["SPLITGATE_CONFIG"] = routes  # the ConfigMap's file, as mounted there
        model, from_args = PLANES[plane]
        known = {e.env for e in model.entries()}
        assert set(env) - known - OPENSSL == set(), f"{plane}: unknown variables"
        from_args(container["args"][1:], env)  # raises ConfigError on any bad value
    assert seen == {"proxy", "control"}


def listen_port(env: dict[str, str], name: str) -> int:
    return parse_listen(env[name])[1]


def test_ports_and_probes_are_where_the_processes_listen_and_answer() -> None:
    control_public = {op.path for op in OPERATIONS if op.public}
    for plane, container, _ in workloads():
        env = environment(container)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        if plane == "proxy":
            assert ports["ops"] == listen_port(env, "SPLITGATE_OPS_LISTEN")
            if "http" in ports:
                assert ports["http"] == listen_port(env, "SPLITGATE_LISTEN")
            answered = {"/healthz", "/readyz"}
        else:
            assert ports["admin"] == listen_port(env, "SPLITGATE_CONTROL_LISTEN")
            answered = control_public
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(kind)
            if probe:
                assert probe["httpGet"]["port"] in ports, (plane, kind)
                assert probe["httpGet"]["path"] in answered, (plane, kind)


def test_services_point_at_named_container_ports() -> None:
    ports: dict[str, set[str]] = {}
    for _, doc in manifests():
        if doc["kind"] == "Deployment":
            name = doc["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
            spec = doc["spec"]["template"]["spec"]
            containers = [*spec.get("initContainers", []), *spec["containers"]]
            ports[name] = {p["name"] for c in containers for p in c.get("ports", [])}
    for _, doc in manifests():
        if doc["kind"] == "Service":
            target = doc["spec"]["selector"]["app.kubernetes.io/name"]
            for port in doc["spec"]["ports"]:
                assert port["targetPort"] in ports[target], (doc["metadata"]["name"], port)


def test_a_stopping_proxy_has_time_to_drain() -> None:
    drain = Timeouts().drain
    for plane, container, spec in workloads():
        if plane != "proxy":
            continue
        pause = 0
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec")
        if pre_stop:
            assert pre_stop["command"][0] == "sleep"
            pause = int(pre_stop["command"][1])
        assert spec["terminationGracePeriodSeconds"] > drain + pause


def test_the_gateway_is_locked_down() -> None:
    for _, container, spec in workloads():
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "memory" in container["resources"]["limits"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_the_dashboard_config_map_carries_the_grafana_dashboard_as_it_is() -> None:
    copy = KUBE / "observability" / "splitgate.json"
    assert copy.read_bytes() == (ROOT / "deploy" / "grafana" / "splitgate.json").read_bytes(), (
        "cp deploy/grafana/splitgate.json deploy/kubernetes/observability/"
    )
