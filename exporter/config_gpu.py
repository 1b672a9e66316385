"""The GPU attribution part of the configuration: Kubernetes settings and per-server pod selectors.

``exporter.config`` reads these keys and reports their problems with the rest; this module holds
their frozen dataclasses, the converters that validate one value, and the checks that relate them.
It does no I/O besides asking whether the optional ``kubernetes`` extra is installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exporter.config import Config

DEFAULT_KUBELET_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
KUBERNETES_KEYS = {"enabled", "socket", "refresh_interval", "pod_namespace", "pod_name"}
POD_KEYS = {"namespace", "name", "container"}
EXTRA_HINT = "pip install 'inference-throughput-exporter[kubernetes]'"


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    """Where the kubelet's pod-resources API is and how often to ask it."""

    enabled: bool = False
    socket: str = DEFAULT_KUBELET_SOCKET
    """The kubelet's pod-resources gRPC Unix socket (mount it read-only into the exporter's pod)."""
    refresh_interval: float = 30.0
    """Seconds between two ``List`` calls; scrapes always read the cached answer."""
    pod_namespace: str = ""
    """The exporter's own pod, for sidecar mode; the command line fills it from ``$POD_NAMESPACE``."""
    pod_name: str = ""
    """The exporter's own pod, for sidecar mode; the command line fills it from ``$POD_NAME``."""

    @property
    def own_pod(self) -> tuple[str, str] | None:
        """(namespace, name) of the exporter's own pod, where known."""
        return (self.pod_namespace, self.pod_name) if self.pod_namespace and self.pod_name else None


@dataclass(frozen=True, slots=True)
class PodSelector:
    """Which pod's GPUs a server runs on, as the kubelet reports them."""

    namespace: str = ""
    """``""``: the exporter's own pod (sidecar mode), whatever ``name`` says."""
    name: str = "*"
    """Pod name; shell wildcards allowed (``vllm-*``)."""
    container: str = ""
    """Only this container's devices; ``""`` takes every container of the pod."""


def pod_selector(value: Any) -> PodSelector:
    """Validate ``pod: {namespace, name, container}``; raise ``ValueError`` with the reason."""
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of namespace, name and container (each optional)")
    unknown = sorted(str(k) for k in value if k not in POD_KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (expected one of: {', '.join(sorted(POD_KEYS))})")
    fields = {key: value.get(key, default) for key, default in (("namespace", ""), ("name", "*"), ("container", ""))}
    for key, text in fields.items():
        if not isinstance(text, str) or (key == "name" and not text):
            raise ValueError(f"{key} must be a {'non-empty ' if key == 'name' else ''}string")
    if not fields["namespace"] and fields["name"] != "*":
        raise ValueError("name needs a namespace (without one, the selector means the exporter's own pod)")
    return PodSelector(**fields)


def absolute_path(value: Any) -> str:
    """An absolute file path."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


def grpc_installed() -> bool:
    """True when the optional ``kubernetes`` extra (grpcio, protobuf) is importable."""
    return importlib.util.find_spec("grpc") is not None and importlib.util.find_spec("google.protobuf") is not None


def attribution_problems(config: Config) -> list[tuple[str, str]]:
    """(path, problem) for settings that contradict each other."""
    problems: list[tuple[str, str]] = []
    gpu = config.gpu
    if gpu.slow_interval < gpu.fast_interval:
        problems.append(("gpu.slow_interval", "must not be shorter than gpu.fast_interval"))
    if config.rate_window < 2 * gpu.fast_interval:
        problems.append(("rate_window", "must be at least twice gpu.fast_interval, or no energy rate has two points"))
    if config.kubernetes.enabled and not grpc_installed():
        problems.append(("kubernetes.enabled", f"needs the kubernetes extra, which is not installed: {EXTRA_HINT}"))
    for i, server in enumerate(config.servers):
        if server.pod is not None and not server.gpus_auto:
            problems.append((f"servers[{i}].pod", "only applies with gpus: auto"))
        if server.pod is not None and not config.kubernetes.enabled:
            problems.append((f"servers[{i}].pod", "needs kubernetes.enabled: true"))
    return problems


def with_downward_api(config: Config, environ: Mapping[str, str]) -> Config:
    """``config`` with the exporter's own pod taken from ``POD_NAMESPACE``/``POD_NAME`` where unset."""
    kubernetes = config.kubernetes
    namespace = kubernetes.pod_namespace or environ.get("POD_NAMESPACE", "")
    name = kubernetes.pod_name or environ.get("POD_NAME", "")
    if (namespace, name) == (kubernetes.pod_namespace, kubernetes.pod_name):
        return config
    return dataclasses.replace(
        config, kubernetes=dataclasses.replace(kubernetes, pod_namespace=namespace, pod_name=name)
    )
