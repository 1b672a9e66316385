"""The GPU attribution part of the configuration: Kubernetes settings and per-server pod selectors.

``exporter.config.load`` reads these keys and reports their problems with the rest; this module holds
the converters that validate one value, and fills the exporter's own pod from the downward API.
It does no I/O besides asking whether the optional ``kubernetes`` extra is installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from typing import Any

from exporter.config.model import Config, PodSelector

KUBERNETES_KEYS = {"enabled", "socket", "refresh_interval", "pod_namespace", "pod_name"}
POD_KEYS = {"namespace", "name", "container"}
EXTRA_HINT = "pip install 'inference-throughput-exporter[kubernetes]'"


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
