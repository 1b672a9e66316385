"""Read the YAML configuration into frozen dataclasses, reporting every problem at once.

A problem names its path (``servers[1].url: must be an http(s) URL``). Unknown keys are problems
too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from exporter.config_access import (
    DEFAULT_MAX_CONNECTIONS,
    UpstreamTls,
    access_problems,
    header_pairs,
    max_connections,
    readable_file,
    upstream_tls,
)
from exporter.config_gpu import (
    KUBERNETES_KEYS,
    KubernetesConfig,
    PodSelector,
    absolute_path,
    attribution_problems,
    pod_selector,
)
from exporter.config_read import ConfigError as ConfigError
from exporter.config_read import Reader as _Reader
from exporter.config_read import currency as _currency
from exporter.config_read import duration as _duration
from exporter.config_read import flag, plain_text
from exporter.config_read import join as _join
from exporter.config_read import non_negative as _non_negative
from exporter.config_read import parse_duration as parse_duration
from exporter.config_read import positive_int as _positive_int
from exporter.config_read import text as _text
from exporter.config_read import url as _url
from exporter.sources.servers import adapter_kinds

GpuEnabled = Literal["auto", "true", "false"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_GPU_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]+$")


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """Prices that turn GPU time and energy into money."""

    currency: str = "USD"
    gpu_hourly_cost: Mapping[str, float] = field(default_factory=lambda: {"default": 0.0})
    """Per GPU and hour, by NVML product name, with a ``default``."""
    energy_cost_per_kwh: float | None = None
    """Electricity price; ``None`` leaves electricity out of the cost."""


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


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """One inference server to scrape."""

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


def _kind(value: Any) -> str:
    kinds = ("auto", *adapter_kinds())
    if value not in kinds:
        raise ValueError(f"must be one of: {', '.join(kinds)}")
    return str(value)


def _gpu_enabled(value: Any) -> GpuEnabled:
    text = str(value).lower() if isinstance(value, bool | str) else None
    if text not in ("auto", "true", "false"):
        raise ValueError("must be auto, true or false")
    return text  # type: ignore[return-value]


def _is_gpu_ref(item: Any) -> bool:
    if isinstance(item, bool):
        return False
    return (isinstance(item, int) and item >= 0) or (isinstance(item, str) and bool(_GPU_UUID.match(item)))


def _gpu_list(value: Any) -> tuple[int | str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be auto or a list of GPU indices or UUIDs")
    out: list[int | str] = []
    for item in value:
        if not _is_gpu_ref(item):
            raise ValueError(f"{item!r} is neither a GPU index (0, 1, ...) nor a UUID (GPU-..., MIG-...)")
        out.append(item)
    if len(set(out)) != len(out):
        raise ValueError("lists a GPU twice")
    return tuple(out)


def _prices(reader: _Reader, value: Any, path: str) -> dict[str, float]:
    if not isinstance(value, dict):
        reader.fail(path, "must be a mapping of GPU product name to hourly price, with a default")
        return {"default": 0.0}
    prices: dict[str, float] = {}
    for name, price in value.items():
        try:
            prices[str(name)] = _non_negative(price)
        except ValueError as exc:
            reader.fail(f'{path}["{name}"]', str(exc))
    if "default" not in value:
        reader.fail(path, "needs a default price (used for GPUs not listed by name)")
    return prices


def _pricing(reader: _Reader, value: Any) -> PricingConfig:
    data = reader.mapping(value, "pricing", {"currency", "gpu_hourly_cost", "energy_cost_per_kwh"})
    default = PricingConfig()
    prices = (
        _prices(reader, data["gpu_hourly_cost"], "pricing.gpu_hourly_cost")
        if "gpu_hourly_cost" in data
        else {"default": 0.0}
    )
    return PricingConfig(
        currency=reader.read(data, "pricing", "currency", default.currency, _currency),
        gpu_hourly_cost=prices,
        energy_cost_per_kwh=reader.read(data, "pricing", "energy_cost_per_kwh", None, _non_negative),
    )


def _gpu(reader: _Reader, value: Any) -> GpuConfig:
    data = reader.mapping(value, "gpu", {"enabled", "fast_interval", "slow_interval", "gpm", "xid_events"})
    d = GpuConfig()
    return GpuConfig(
        enabled=reader.read(data, "gpu", "enabled", "auto", _gpu_enabled),
        fast_interval=reader.read(data, "gpu", "fast_interval", d.fast_interval, _gpu_interval),
        slow_interval=reader.read(data, "gpu", "slow_interval", d.slow_interval, _gpu_interval),
        gpm=reader.read(data, "gpu", "gpm", d.gpm, flag),
        xid_events=reader.read(data, "gpu", "xid_events", d.xid_events, flag),
    )


def _gpu_interval(value: Any) -> float:
    seconds = _duration(value)
    if seconds < 0.1:
        raise ValueError("must be at least 100ms")
    return seconds


def _kubernetes(reader: _Reader, value: Any) -> KubernetesConfig:
    data = reader.mapping(value, "kubernetes", KUBERNETES_KEYS)
    d = KubernetesConfig()
    return KubernetesConfig(
        enabled=reader.read(data, "kubernetes", "enabled", d.enabled, flag),
        socket=reader.read(data, "kubernetes", "socket", d.socket, absolute_path),
        refresh_interval=reader.read(data, "kubernetes", "refresh_interval", d.refresh_interval, _duration),
        pod_namespace=reader.read(data, "kubernetes", "pod_namespace", d.pod_namespace, plain_text),
        pod_name=reader.read(data, "kubernetes", "pod_name", d.pod_name, plain_text),
    )


_SERVER_KEYS = {"name", "url", "kind", "gpus", "model", "timeout", "pod", "bearer_token_file", "headers", "tls"}


def _server(reader: _Reader, value: Any, path: str, poll_interval: float) -> ServerConfig | None:
    data = reader.mapping(value, path, _SERVER_KEYS)
    for required in ("name", "url"):
        if required not in data and isinstance(value, dict):
            reader.fail(_join(path, required), "is required")
    name = reader.read(data, path, "name", None, _server_name)
    url = reader.read(data, path, "url", None, _url)
    server = ServerConfig(
        name=name or "",
        url=url or "",
        kind=reader.read(data, path, "kind", "auto", _kind),
        gpus=() if data.get("gpus") == "auto" else reader.read(data, path, "gpus", (), _gpu_list),
        gpus_auto=data.get("gpus") == "auto",
        pod=reader.read(data, path, "pod", None, pod_selector),
        model=reader.read(data, path, "model", None, _optional_text),
        timeout=reader.read(data, path, "timeout", 2.0, _duration),
        bearer_token_file=reader.read(data, path, "bearer_token_file", None, readable_file),
        headers=reader.read(data, path, "headers", (), header_pairs),
        tls=reader.read(data, path, "tls", None, upstream_tls),
    )
    if server.timeout >= poll_interval:
        reader.fail(_join(path, "timeout"), "must be shorter than poll_interval")
    return server if name and url else None


def _server_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError("must be 1-63 letters, digits, '_', '.', ':' or '-', starting with a letter or digit")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _servers(reader: _Reader, value: Any, poll_interval: float) -> tuple[ServerConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        reader.fail("servers", "must be a list")
        return ()
    servers = [_server(reader, item, f"servers[{i}]", poll_interval) for i, item in enumerate(value)]
    seen: set[str] = set()
    for i, server in enumerate(servers):
        if server is not None and server.name in seen:
            reader.fail(f"servers[{i}].name", f"{server.name!r} is used by an earlier server")
        if server is not None:
            seen.add(server.name)
    return tuple(s for s in servers if s is not None)


_TOP_KEYS = {
    "poll_interval",
    "rate_window",
    "pricing",
    "gpu",
    "servers",
    "max_body_bytes",
    "max_series_per_server",
    "kubernetes",
    "max_connections",
}


def config_from_data(data: Any, source: str = "config") -> Config:
    """Build a ``Config`` from parsed YAML, or raise ``ConfigError`` listing every problem."""
    reader = _Reader()
    top = reader.mapping(data, "", _TOP_KEYS)
    defaults = Config()
    poll_interval = reader.read(top, "", "poll_interval", defaults.poll_interval, _duration)
    config = Config(
        poll_interval=poll_interval,
        rate_window=reader.read(top, "", "rate_window", defaults.rate_window, _duration),
        pricing=_pricing(reader, top.get("pricing")),
        gpu=_gpu(reader, top.get("gpu")),
        servers=_servers(reader, top.get("servers"), poll_interval),
        kubernetes=_kubernetes(reader, top.get("kubernetes")),
        max_body_bytes=reader.read(top, "", "max_body_bytes", defaults.max_body_bytes, _positive_int),
        max_connections=reader.read(top, "", "max_connections", defaults.max_connections, max_connections),
        max_series_per_server=reader.read(
            top, "", "max_series_per_server", defaults.max_series_per_server, _positive_int
        ),
    )
    _check_relations(reader, config)
    if reader.problems:
        raise ConfigError(reader.problems, source)
    return config


def _check_relations(reader: _Reader, config: Config) -> None:
    if config.rate_window < 2 * config.poll_interval:
        reader.fail("rate_window", "must be at least twice poll_interval, or no rate has two points")
    for path, problem in [*attribution_problems(config), *access_problems(config)]:
        reader.fail(path, problem)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file: {exc}"], source) from exc
    return config_from_text(text, source)


def config_from_text(text: str, source: str = "config") -> Config:
    """Parse and validate YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {_yaml_reason(exc)}"], source) from exc
    return config_from_data(data, source)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else str(problem)
