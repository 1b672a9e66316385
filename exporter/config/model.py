"""The configuration as frozen dataclasses: what every stage below the command line reads.

Nothing here reads files or validates; ``exporter.config.load`` builds these from YAML and
``exporter.config.checks`` holds every rule that relates one setting to another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

GpuEnabled = Literal["auto", "true", "false"]
Role = Literal["engine", "prefill", "decode", "frontend", "worker"]
ROLES: tuple[Role, ...] = ("engine", "prefill", "decode", "frontend", "worker")
"""What a server does in its deployment (``docs/deployments.md``)."""
GPU_ROLES: tuple[Role, ...] = ("engine", "prefill", "decode", "worker")
"""Roles whose GPUs serve the deployment's model."""
DEFAULT_KUBELET_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
DEFAULT_MAX_CONNECTIONS = 100


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """Prices that turn GPU time and energy into money."""

    currency: str = "USD"
    gpu_hourly_cost: Mapping[str, float] = field(default_factory=lambda: {"default": 0.0})
    """Per GPU and hour, by NVML product name, with a ``default``."""
    energy_cost_per_kwh: float | None = None
    """Electricity price; ``None`` leaves electricity out of the cost."""
    generation_token_weight: float = 4.0
    """One generated token costs as much as this many computed prompt tokens (the token-weight split)."""
    cached_prompt_token_weight: float = 0.0
    """A prompt token served from the prefix cache costs this share of a computed one, 0..1."""


@dataclass(frozen=True, slots=True)
class GpuConfig:
    """How the GPUs are read."""

    enabled: GpuEnabled = "auto"
    """``auto`` uses NVML if it loads; ``true`` warns loudly when it does not; ``false`` never tries."""
    fast_interval: float = 1.0
    """Seconds between reads of utilization, power, energy, clocks and clock events (and GPM)."""
    slow_interval: float = 10.0
    """Seconds between reads of processes, ECC, power limit and MIG layout, and attribution refreshes."""
    gpm: bool = False
    """Read GPM profiling ratios (Hopper and newer); off by default, like any profiler."""
    xid_events: bool = True
    """Count XID errors from an NVML event thread."""
    peak_flops: Mapping[str, float] = field(default_factory=dict)
    """Dense BF16 peak FLOP/s per GPU by NVML product name, over the built-in table."""


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


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """How the exporter verifies (and presents itself to) an ``https://`` upstream."""

    ca_file: str | None = None
    """PEM CA bundle that signs the server's certificate; ``None``: the system's CAs."""
    cert_file: str | None = None
    """Client certificate for servers that require mutual TLS (with ``key_file``)."""
    key_file: str | None = None
    insecure_skip_verify: bool = False
    """Accept any server certificate (testing only: anyone on the path can read the metrics)."""
    server_name: str | None = None
    """The name to verify the certificate against (and send as SNI) instead of the URL's host."""

    @property
    def files(self) -> tuple[str, ...]:
        """The files the TLS context is built from."""
        return tuple(f for f in (self.ca_file, self.cert_file, self.key_file) if f is not None)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One inference server to poll."""

    name: str
    url: str
    kind: str = "auto"
    gpus: tuple[int | str, ...] = ()
    """NVML indices or UUIDs of the GPUs the server runs on."""
    gpus_auto: bool = False
    """``gpus: auto``: find the GPUs from the server's processes or from the kubelet."""
    pod: PodSelector | None = None
    """With ``gpus: auto`` and Kubernetes: the pod (and container) whose GPUs the server uses."""
    model: str | None = None
    """Overrides the model label (and names the model of servers that report none)."""
    timeout: float = 2.0
    """Seconds one poll of this server may take."""
    bearer_token_file: str | None = None
    """File whose content is sent as ``Authorization: Bearer ...`` (read again when it changes)."""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Extra request headers (name, value); values may be secrets and are never logged."""
    tls: UpstreamTls | None = None
    """How an ``https://`` server is verified; ``None``: the system's CAs."""
    deployment: str | None = None
    """The deployment the server belongs to (replicas, prefill and decode pools, a frontend)."""
    role: Role = "engine"
    """What it does there; ``worker`` is GPUs of the deployment without ``/metrics`` (no ``url``)."""

    @property
    def polled(self) -> bool:
        """Whether the server has a ``/metrics`` to poll (every role but ``worker``)."""
        return self.role != "worker"


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """Settings of one deployment, by its name."""

    spans_nodes: bool = False
    """Its servers are on several nodes: its figures come from the fleet recording rules only."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    poll_interval: float = 5.0
    rate_window: float = 60.0
    pricing: PricingConfig = field(default_factory=PricingConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    servers: tuple[ServerConfig, ...] = ()
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest upstream ``/metrics`` body read; a larger one marks that server down."""
    max_series_per_server: int = 50_000
    """Most sample lines accepted from one server's body; more marks that server down."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Most upstream connections open at once, over all servers."""
    deployments: Mapping[str, DeploymentConfig] = field(default_factory=dict)
    """Per deployment name, where a deployment needs settings (``spans_nodes``)."""
