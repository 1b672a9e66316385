"""The Kubernetes manifests, checked offline by tools: schemas, CRDs, promtool, our config loader, policy.

Core objects validate against the Kubernetes OpenAPI schemas that ``kubernetes-validate`` ships
(strict: unknown fields are errors), prometheus-operator objects against their CRD schemas in
``tests/fixtures/schemas`` (made strict the same way), the PrometheusRule's rules through
``promtool check rules``, and every exporter config in a ConfigMap through the exporter's own loader.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import FIXTURES, require_tool
from tests.helpers import parse_config

ROOT = Path(__file__).parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
SCHEMAS = FIXTURES / "schemas" / "prometheus-operator"
VERSIONS = ("1.29.0", "1.37.0")
"""The oldest Kubernetes we document (pod-resources GA, sidecar-era fields) and the newest schemas shipped."""
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
EXPORTER_IMAGE = "inference-throughput-exporter"
POD_RESOURCES = "/var/lib/kubelet/pod-resources"


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("prometheusrule", ROOT / "scripts" / "prometheusrule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


# -- what the kustomizations hold ----------------------------------------------------------------


def kustomizations() -> list[Path]:
    return sorted(KUBERNETES.rglob("kustomization.yaml"))


def resources(kustomization: Path) -> list[Path]:
    data = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
    return [kustomization.parent / name for name in data["resources"]]


def manifests() -> list[Path]:
    return [path for k in kustomizations() for path in resources(k) if path.is_file()]


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in manifests():
        for doc in documents(path):
            yield path, doc


def of_kind(kind: str, folder: Path | None = None) -> list[dict[str, Any]]:
    return [doc for path, doc in objects() if doc["kind"] == kind and (folder is None or path.parent == folder)]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, doc in objects():
        if doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def exporter_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            if container["image"].split(":")[0] == EXPORTER_IMAGE:
                yield name, spec, container


def test_the_kustomizations_list_every_manifest_exactly_once_and_nothing_missing() -> None:
    listed = [path.resolve() for k in kustomizations() for path in resources(k)]
    assert all(path.exists() for path in listed), [p for p in listed if not p.exists()]
    assert len(listed) == len(set(listed))
    on_disk = {p.resolve() for p in KUBERNETES.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk == set(listed)


def test_the_kustomizations_use_only_known_fields_and_retag_the_exporter_image() -> None:
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "images"}
    for kustomization in kustomizations():
        data = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        assert data["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and data["kind"] == "Kustomization"
        assert set(data) <= known, set(data) - known
        assert [image["name"] for image in data["images"]] == [EXPORTER_IMAGE]


# -- schemas ---------------------------------------------------------------------------------


def core_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.relative_to(KUBERNETES)}:{d['kind']}", d) for p, d in objects() if d["kind"] not in OPERATOR_KINDS]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("where", "doc"), core_objects(), ids=[w for w, _ in core_objects()])
def test_core_objects_validate_strictly_against_the_kubernetes_schemas(
    where: str, doc: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_kubernetes_validator_rejects_an_unknown_field() -> None:
    daemonset = copy.deepcopy(of_kind("DaemonSet")[0])
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, VERSIONS[-1], strict=True)


def strict(schema: Any) -> Any:
    """The schema with unknown properties forbidden wherever it lists properties (as kubectl --validate=strict)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    data = json.loads((SCHEMAS / f"monitoring.coreos.com_v1_{kind.lower()}.json").read_text(encoding="utf-8"))
    assert data["kind"] == kind and data["version"] == "v1"
    schema = strict(data["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def operator_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.relative_to(KUBERNETES)}:{d['kind']}", d) for p, d in objects() if d["kind"] in OPERATOR_KINDS]


@pytest.mark.parametrize(("where", "doc"), operator_objects(), ids=[w for w, _ in operator_objects()])
def test_prometheus_operator_objects_validate_against_their_crd_schemas(where: str, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in crd_validator(doc["kind"]).iter_errors(doc)
    ]
    assert errors == []


def test_every_prometheus_operator_kind_is_shipped_and_the_crd_check_rejects_an_unknown_field() -> None:
    assert {doc["kind"] for _, doc in operator_objects()} == OPERATOR_KINDS
    monitor = copy.deepcopy(of_kind("ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "15s"
    assert list(crd_validator("ServiceMonitor").iter_errors(monitor))


# -- the PrometheusRule is the rule files ------------------------------------------------------


def test_the_prometheus_rule_holds_exactly_the_rules_of_the_rule_files() -> None:
    (rule,) = of_kind("PrometheusRule")
    from_files = [group for path in generator.RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]]
    assert rule["spec"]["groups"] == from_files
    records = [r.get("record") or r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(records) == sum(len(g["rules"]) for g in from_files) and records


def test_the_committed_prometheus_rule_is_what_the_generator_renders() -> None:
    committed = (KUBERNETES / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == generator.render(), (
        "run: python scripts/prometheusrule.py --write deploy/kubernetes/prometheusrule.yaml"
    )


def test_the_generator_refuses_a_group_name_used_by_both_rule_files(tmp_path: Path) -> None:
    one, two = tmp_path / "a.yml", tmp_path / "b.yml"
    one.write_text("groups:\n- name: same\n  rules: []\n")
    two.write_text("groups:\n- name: same\n  rules: []\n")
    with pytest.raises(ValueError, match="same"):
        generator.read_groups((one, two))


@pytest.mark.prometheus
def test_the_prometheus_rule_passes_promtool_check_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    (rule,) = of_kind("PrometheusRule")
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False), encoding="utf-8")
    command = [promtool, "check", "rules", str(extracted)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# -- the exporter's own configuration and endpoints --------------------------------------------


def exporter_configs() -> list[tuple[str, str]]:
    return [
        (f"{cm['metadata']['name']}/{key}", text)
        for cm in of_kind("ConfigMap")
        for key, text in cm.get("data", {}).items()
        if key.endswith(".yml")
    ]


@pytest.mark.parametrize(("where", "text"), exporter_configs(), ids=[w for w, _ in exporter_configs()])
def test_every_exporter_config_in_a_configmap_is_accepted_by_the_exporter(where: str, text: str) -> None:
    parse_config(text, where)


def test_every_exporter_container_mounts_its_configmap_where_its_flags_point() -> None:
    configmaps = {cm["metadata"]["name"]: cm for cm in of_kind("ConfigMap")}
    containers = list(exporter_containers())
    assert len(containers) == 2, "the DaemonSet and the sidecar"
    for _, spec, container in containers:
        (flag,) = [a for a in container["args"] if a.startswith("--config.file=")]
        folder, name = flag.removeprefix("--config.file=").rsplit("/", 1)
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert name in configmaps[volume["configMap"]["name"]]["data"]
        assert mount["readOnly"] is True


def test_exporter_containers_probe_health_and_readiness_on_their_metrics_port_and_set_resources() -> None:
    for _, _, container in exporter_containers():
        port = container["ports"][0]
        assert port["containerPort"] == 9842
        assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": port["name"]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": port["name"]}
        assert f"--web.listen-address=:{port['containerPort']}" in container["args"]
        resources = container["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"} and set(resources["limits"]) == {"cpu", "memory"}


# -- least privilege ---------------------------------------------------------------------------


def effective(spec: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    return container.get("securityContext", {}).get(key, spec.get("securityContext", {}).get(key))


def mounts_pod_resources(spec: dict[str, Any], container: dict[str, Any]) -> bool:
    host = {v["name"] for v in spec.get("volumes", []) if v.get("hostPath", {}).get("path") == POD_RESOURCES}
    return any(m["name"] in host for m in container.get("volumeMounts", []))


def all_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            yield f"{name}/{container['name']}", spec, container


def test_every_container_drops_all_capabilities_and_cannot_escalate_or_write_its_root() -> None:
    for where, spec, container in all_containers():
        context = container["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"]}, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context.get("privileged", False) is False, where
        assert effective(spec, container, "seccompProfile") == {"type": "RuntimeDefault"}, where


def test_only_the_container_that_talks_to_the_kubelet_socket_runs_as_root() -> None:
    root = []
    for where, spec, container in all_containers():
        if mounts_pod_resources(spec, container):
            assert effective(spec, container, "runAsUser") == 0, where
            root.append(where)
        else:
            assert effective(spec, container, "runAsNonRoot") is True, where
            assert effective(spec, container, "runAsUser") not in (None, 0), where
    assert root == ["inference-throughput-exporter/exporter"]


def test_host_access_is_only_the_read_only_pod_resources_directory() -> None:
    for name, spec in pod_specs():
        assert not spec.get("hostPID") and not spec.get("hostNetwork") and not spec.get("hostIPC"), name
        assert spec["automountServiceAccountToken"] is False, name
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                assert volume["hostPath"] == {"path": POD_RESOURCES, "type": "Directory"}, name
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["mountPath"] == POD_RESOURCES:
                    assert mount["readOnly"] is True


def test_the_daemonset_tolerates_gpu_taints_and_uses_the_nvidia_runtime() -> None:
    (daemonset,) = of_kind("DaemonSet")
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_the_sidecar_shares_the_process_namespace_and_the_servers_user() -> None:
    (deployment,) = of_kind("Deployment", KUBERNETES / "sidecar")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["shareProcessNamespace"] is True
    users = {effective(spec, c, "runAsUser") for c in spec["containers"]}
    assert len(users) == 1, "gpus: auto reads the server's open files, which needs the same user"
    (_, _, exporter) = next(c for c in exporter_containers() if c[0] == deployment["metadata"]["name"])
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in exporter["env"]}
    assert env["POD_NAME"] == "metadata.name" and env["POD_NAMESPACE"] == "metadata.namespace"


# -- the objects fit together ------------------------------------------------------------------


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_templates() -> list[dict[str, Any]]:
    return [d["spec"]["template"] for _, d in objects() if d["kind"] in ("Deployment", "DaemonSet")]


def port_names(template: dict[str, Any]) -> set[str]:
    return {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}


def test_monitors_services_and_policies_select_pods_that_exist_on_ports_that_exist() -> None:
    templates = pod_templates()
    (service,) = of_kind("Service")
    (monitor,) = of_kind("ServiceMonitor")
    assert labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (target,) = [t for t in templates if labels_match(service["spec"]["selector"], t["metadata"]["labels"])]
    assert {p["name"] for p in service["spec"]["ports"]} >= {e["port"] for e in monitor["spec"]["endpoints"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names(target)
    (podmonitor,) = of_kind("PodMonitor")
    (scraped,) = [
        t for t in templates if labels_match(podmonitor["spec"]["selector"]["matchLabels"], t["metadata"]["labels"])
    ]
    assert {e["port"] for e in podmonitor["spec"]["podMetricsEndpoints"]} <= port_names(scraped)
    for policy in of_kind("NetworkPolicy"):
        (guarded,) = [
            t for t in templates if labels_match(policy["spec"]["podSelector"]["matchLabels"], t["metadata"]["labels"])
        ]
        allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert allowed <= port_names(guarded)
        exporter_port = next(
            p["name"] for c in guarded["spec"]["containers"] for p in c["ports"] if p["containerPort"] == 9842
        )
        (rule,) = [r for r in policy["spec"]["ingress"] if any(p["port"] == exporter_port for p in r["ports"])]
        assert rule["from"], "the exporter's port is open to Prometheus only"
