"""Read the YAML configuration into frozen dataclasses, reporting every problem at once.

A problem names its path (``servers[1].url: must be an http(s) URL``). Unknown keys are problems
too, so a typo never silently falls back to a default. The valid ``kind`` values are handed in by
the caller (the adapters' registry), so the configuration knows nothing of the sources.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from exporter.config import checks
from exporter.config.access import header_pairs, max_connections, readable_file, upstream_tls
from exporter.config.kubernetes import KUBERNETES_KEYS, absolute_path, pod_selector
from exporter.config.model import (
    ROLES,
    Config,
    DeploymentConfig,
    GpuConfig,
    GpuEnabled,
    KubernetesConfig,
    PricingConfig,
    Role,
    ServerConfig,
)
from exporter.config.read import (
    ConfigError,
    Reader,
    currency,
    duration,
    flag,
    join,
    load_yaml,
    non_negative,
    plain_text,
    positive_int,
    positive_number,
    read_text_file,
    text,
    unit_interval,
    url,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_GPU_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]+$")
_SERVER_KEYS = {
    "name",
    "url",
    "kind",
    "gpus",
    "model",
    "timeout",
    "pod",
    "bearer_token_file",
    "headers",
    "tls",
    "deployment",
    "role",
}
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
    "deployments",
}


def load_config(path: str | Path, *, kinds: Collection[str]) -> Config:
    """Read and validate a YAML config file; ``kinds`` are the valid server kinds besides ``auto``."""
    source = str(path)
    return config_from_text(read_text_file(source, source), source, kinds=kinds)


def config_from_text(text: str, source: str = "config", *, kinds: Collection[str]) -> Config:
    """Parse and validate YAML text."""
    return config_from_data(load_yaml(text, source), source, kinds=kinds)


def config_from_data(data: Any, source: str = "config", *, kinds: Collection[str]) -> Config:
    """Build a ``Config`` from parsed YAML, or raise ``ConfigError`` listing every problem."""
    reader = Reader()
    top = reader.mapping(data, "", _TOP_KEYS)
    d = Config()
    poll_interval = reader.read(top, "", "poll_interval", d.poll_interval, duration)
    rate_window = reader.read(top, "", "rate_window", d.rate_window, duration)
    pricing, gpu = _pricing(reader, top.get("pricing")), _gpu(reader, top.get("gpu"))
    servers, entries = _servers(reader, top.get("servers"), ("auto", *kinds))
    config = Config(
        poll_interval=poll_interval,
        rate_window=rate_window,
        pricing=pricing,
        gpu=gpu,
        servers=servers,
        kubernetes=_kubernetes(reader, top.get("kubernetes")),
        max_body_bytes=reader.read(top, "", "max_body_bytes", d.max_body_bytes, positive_int),
        max_connections=reader.read(top, "", "max_connections", d.max_connections, max_connections),
        max_series_per_server=reader.read(top, "", "max_series_per_server", d.max_series_per_server, positive_int),
        deployments=_deployments(reader, top.get("deployments")),
    )
    for path, problem in checks.problems(config, entries):
        reader.fail(path, problem)
    if reader.problems:
        raise ConfigError(reader.problems, source)
    return config


# -- sections --------------------------------------------------------------------------------------


_PRICING_KEYS = {
    "currency",
    "gpu_hourly_cost",
    "energy_cost_per_kwh",
    "generation_token_weight",
    "cached_prompt_token_weight",
}
_GPU_KEYS = {"enabled", "fast_interval", "slow_interval", "gpm", "xid_events", "peak_flops"}


def _pricing(reader: Reader, value: Any) -> PricingConfig:
    data = reader.mapping(value, "pricing", _PRICING_KEYS)
    default = PricingConfig()
    prices = (
        _prices(reader, data["gpu_hourly_cost"], "pricing.gpu_hourly_cost")
        if "gpu_hourly_cost" in data
        else {"default": 0.0}
    )
    return PricingConfig(
        currency=reader.read(data, "pricing", "currency", default.currency, currency),
        gpu_hourly_cost=prices,
        energy_cost_per_kwh=reader.read(data, "pricing", "energy_cost_per_kwh", None, non_negative),
        generation_token_weight=reader.read(
            data, "pricing", "generation_token_weight", default.generation_token_weight, positive_number
        ),
        cached_prompt_token_weight=reader.read(
            data, "pricing", "cached_prompt_token_weight", default.cached_prompt_token_weight, unit_interval
        ),
    )


def _prices(reader: Reader, value: Any, path: str) -> dict[str, float]:
    if not isinstance(value, dict):
        reader.fail(path, "must be a mapping of GPU product name to hourly price, with a default")
        return {"default": 0.0}
    prices: dict[str, float] = {}
    for name, price in value.items():
        try:
            prices[str(name)] = non_negative(price)
        except ValueError as exc:
            reader.fail(f'{path}["{name}"]', str(exc))
    if "default" not in value:
        reader.fail(path, "needs a default price (used for GPUs not listed by name)")
    return prices


def _gpu(reader: Reader, value: Any) -> GpuConfig:
    data = reader.mapping(value, "gpu", _GPU_KEYS)
    d = GpuConfig()
    return GpuConfig(
        enabled=reader.read(data, "gpu", "enabled", "auto", _gpu_enabled),
        fast_interval=reader.read(data, "gpu", "fast_interval", d.fast_interval, _gpu_interval),
        slow_interval=reader.read(data, "gpu", "slow_interval", d.slow_interval, _gpu_interval),
        gpm=reader.read(data, "gpu", "gpm", d.gpm, flag),
        xid_events=reader.read(data, "gpu", "xid_events", d.xid_events, flag),
        peak_flops=_peaks(reader, data.get("peak_flops"), "gpu.peak_flops"),
    )


def _peaks(reader: Reader, value: Any, path: str) -> dict[str, float]:
    """``gpu.peak_flops``: NVML product name → dense BF16 FLOP/s per GPU, each above zero."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        reader.fail(path, "must be a mapping of GPU product name to dense BF16 FLOP/s, such as 989.4e12")
        return {}
    peaks: dict[str, float] = {}
    for name, peak in value.items():
        try:
            peaks[str(name)] = positive_number(peak)
        except ValueError as exc:
            reader.fail(f'{path}["{name}"]', f"{exc} (dense BF16 FLOP/s per GPU, such as 989.4e12)")
    return peaks


def _kubernetes(reader: Reader, value: Any) -> KubernetesConfig:
    data = reader.mapping(value, "kubernetes", KUBERNETES_KEYS)
    d = KubernetesConfig()
    return KubernetesConfig(
        enabled=reader.read(data, "kubernetes", "enabled", d.enabled, flag),
        socket=reader.read(data, "kubernetes", "socket", d.socket, absolute_path),
        refresh_interval=reader.read(data, "kubernetes", "refresh_interval", d.refresh_interval, duration),
        pod_namespace=reader.read(data, "kubernetes", "pod_namespace", d.pod_namespace, plain_text),
        pod_name=reader.read(data, "kubernetes", "pod_name", d.pod_name, plain_text),
    )


def _servers(reader: Reader, value: Any, kinds: tuple[str, ...]) -> tuple[tuple[ServerConfig, ...], list[checks.Entry]]:
    """The complete server entries, and every entry read (with its path) for the cross-field checks."""
    if value is None:
        return (), []
    if not isinstance(value, list):
        reader.fail("servers", "must be a list")
        return (), []
    entries = [
        checks.Entry(f"servers[{i}]", *_server(reader, item, f"servers[{i}]", kinds)) for i, item in enumerate(value)
    ]
    return tuple(e.server for e in entries if e.complete), entries


def _server(reader: Reader, value: Any, path: str, kinds: tuple[str, ...]) -> tuple[ServerConfig, bool]:
    """The entry as read, and whether it is complete (has a valid name and URL)."""
    data = reader.mapping(value, path, _SERVER_KEYS)
    role = reader.read(data, path, "role", "engine", _role)
    for required in ("name", "url") if role != "worker" else ("name",):
        if required not in data and isinstance(value, dict):
            reader.fail(join(path, required), "is required")
    name = reader.read(data, path, "name", None, _name)
    address = reader.read(data, path, "url", None, url)
    server = ServerConfig(
        name=name or "",
        url=address or "",
        kind=reader.read(data, path, "kind", "auto", lambda v: _kind(v, kinds)),
        gpus=() if data.get("gpus") == "auto" else reader.read(data, path, "gpus", (), _gpu_list),
        gpus_auto=data.get("gpus") == "auto",
        pod=reader.read(data, path, "pod", None, pod_selector),
        model=reader.read(data, path, "model", None, _optional_text),
        timeout=reader.read(data, path, "timeout", 2.0, duration),
        bearer_token_file=reader.read(data, path, "bearer_token_file", None, readable_file),
        headers=reader.read(data, path, "headers", (), header_pairs),
        tls=reader.read(data, path, "tls", None, upstream_tls),
        deployment=reader.read(data, path, "deployment", None, _name),
        role=role,
    )
    return server, bool(name and (address or role == "worker"))


def _deployments(reader: Reader, value: Any) -> dict[str, DeploymentConfig]:
    data = reader.mapping(value, "deployments", None)
    deployments: dict[str, DeploymentConfig] = {}
    for key, settings in data.items():
        path = f"deployments.{key}"
        try:
            name = _name(key)
        except ValueError as exc:
            reader.fail(path, str(exc))
            continue
        entry = reader.mapping(settings, path, {"spans_nodes"})
        deployments[name] = DeploymentConfig(spans_nodes=reader.read(entry, path, "spans_nodes", False, flag))
    return deployments


# -- values ----------------------------------------------------------------------------------------


def _kind(value: Any, kinds: tuple[str, ...]) -> str:
    if value not in kinds:
        raise ValueError(f"must be one of: {', '.join(kinds)}")
    return str(value)


def _gpu_enabled(value: Any) -> GpuEnabled:
    text = str(value).lower() if isinstance(value, bool | str) else None
    if text not in ("auto", "true", "false"):
        raise ValueError("must be auto, true or false")
    return text  # type: ignore[return-value]


def _gpu_interval(value: Any) -> float:
    seconds = duration(value)
    if seconds < 0.1:
        raise ValueError("must be at least 100ms")
    return seconds


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


def _role(value: Any) -> Role:
    if value not in ROLES:
        raise ValueError(f"must be one of: {', '.join(ROLES)}")
    return value  # type: ignore[no-any-return]


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError("must be 1-63 letters, digits, '_', '.', ':' or '-', starting with a letter or digit")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else text(value)
