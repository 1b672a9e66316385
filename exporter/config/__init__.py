"""The configuration: YAML in, frozen dataclasses out, every problem reported with its path.

``model`` holds the dataclasses, ``read`` the machinery for untrusted YAML, ``access`` and
``kubernetes`` the converters of those sections, ``checks`` every rule that relates two settings,
and ``load`` puts them together. The valid server kinds are handed in by the caller.
"""

from __future__ import annotations

from exporter.config.load import config_from_data, config_from_text, load_config
from exporter.config.model import (
    Config,
    GpuConfig,
    KubernetesConfig,
    PodSelector,
    PricingConfig,
    ServerConfig,
    UpstreamTls,
)
from exporter.config.read import ConfigError, parse_duration

__all__ = [
    "Config",
    "ConfigError",
    "GpuConfig",
    "KubernetesConfig",
    "PodSelector",
    "PricingConfig",
    "ServerConfig",
    "UpstreamTls",
    "config_from_data",
    "config_from_text",
    "load_config",
    "parse_duration",
]
