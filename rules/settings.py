"""Load and validate ``rules/settings.yml``: the thresholds and windows of every generated rule.

The YAML file is the one place where they are set. Every key is required (no second set of defaults
hides here), unknown keys are errors, and a ``SettingsError`` lists every problem with its path
(``throughput_drop.ratio: must be a number between 0 and 1``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.config.read import ConfigError, load_yaml

DEFAULT_PATH = Path(__file__).with_name("settings.yml")
DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
CLOCK_EVENT_REASONS = (
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "display_clock_setting",
)
"""The ``reason`` values of ``inference_gpu_clock_event_active``."""

Check = Callable[[Any], str | None]
"""Returns why a value is invalid, or ``None`` when it is valid."""


class SettingsError(ConfigError):
    """The settings file is invalid: the exporter's configuration error, every problem with its path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(problems, source)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _duration(value: Any) -> str | None:
    ok = isinstance(value, str) and DURATION.match(value) is not None
    return None if ok else "must be a Prometheus duration such as 30s, 10m or 1h"


def _ratio(value: Any) -> str | None:
    return None if _is_number(value) and 0 < value < 1 else "must be a number between 0 and 1 (exclusive)"


def _positive(value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else "must be a number above 0"


def _non_negative(value: Any) -> str | None:
    return None if _is_number(value) and value >= 0 else "must be a number of 0 or more"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def _runbook_url(value: Any) -> str | None:
    if value == "":
        return None
    ok = isinstance(value, str) and re.fullmatch(r"https?://[^\s#]+", value) is not None
    return None if ok else 'must be "" (the project\'s docs/runbooks.md) or an absolute http(s) URL without a #fragment'


def _xids(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in value)
    return None if ok else "must be a list of XID numbers (positive integers)"


def _reasons(value: Any) -> str | None:
    if isinstance(value, list) and value and all(r in CLOCK_EVENT_REASONS for r in value):
        return None
    return f"must be a non-empty list of clock-event reasons ({', '.join(CLOCK_EVENT_REASONS)})"


def _check(check: Check) -> dict[str, Any]:
    """Field metadata: how to validate a value."""
    return {"check": check}


def _nested(cls: type) -> dict[str, Any]:
    """Field metadata: the value is a section of its own."""
    return {"section": cls}


@dataclass(frozen=True, slots=True)
class ThroughputDrop:
    """``InferenceThroughputDrop``: tokens/s per GPU well below its own baseline while demand is present."""

    ratio: float = field(metadata=_check(_ratio))
    baseline_window: str = field(metadata=_check(_duration))
    min_history: str = field(metadata=_check(_duration))
    busy_running_ratio: float = field(metadata=_check(_ratio))
    restart_grace: str = field(metadata=_check(_duration))
    for_: str = field(metadata=_check(_duration))


@dataclass(frozen=True, slots=True)
class Hold:
    """An alert whose only setting is how long its condition must hold."""

    for_: str = field(metadata=_check(_duration))


@dataclass(frozen=True, slots=True)
class GpuIdleWhileQueued:
    """``InferenceGpuIdleWhileQueued``: requests wait while the server's GPUs do nothing."""

    max_utilization: float = field(metadata=_check(_ratio))
    for_: str = field(metadata=_check(_duration))


@dataclass(frozen=True, slots=True)
class CostPerRequestHigh:
    """``InferenceCostPerRequestHigh``: a request costs more than the threshold."""

    threshold: float = field(metadata=_check(_positive))
    min_requests_per_second: float = field(metadata=_check(_non_negative))
    for_: str = field(metadata=_check(_duration))


@dataclass(frozen=True, slots=True)
class GpuXidErrors:
    """``InferenceGpuXidErrors``: the driver reported XID events."""

    window: str = field(metadata=_check(_duration))
    critical_xids: list[int] = field(metadata=_check(_xids))


@dataclass(frozen=True, slots=True)
class GpuThrottled:
    """``InferenceGpuThrottled``: clocks held down by a fault or by heat."""

    reasons: list[str] = field(metadata=_check(_reasons))
    min_active_ratio: float = field(metadata=_check(_ratio))
    window: str = field(metadata=_check(_duration))
    for_: str = field(metadata=_check(_duration))


@dataclass(frozen=True, slots=True)
class KvCacheNearFull:
    """``InferenceKvCacheNearFull``: the KV cache stays almost full."""

    threshold: float = field(metadata=_check(_ratio))
    for_: str = field(metadata=_check(_duration))


@dataclass(frozen=True, slots=True)
class Settings:
    """Every threshold and window of the generated rules."""

    exporter_job: str = field(metadata=_check(_text))
    runbook_url: str = field(metadata=_check(_runbook_url))
    evaluation_interval: str = field(metadata=_check(_duration))
    throughput_drop: ThroughputDrop = field(metadata=_nested(ThroughputDrop))
    server_down: Hold = field(metadata=_nested(Hold))
    exporter_down: Hold = field(metadata=_nested(Hold))
    nvml_down: Hold = field(metadata=_nested(Hold))
    gpu_lost: Hold = field(metadata=_nested(Hold))
    gpu_idle_while_queued: GpuIdleWhileQueued = field(metadata=_nested(GpuIdleWhileQueued))
    cost_per_request_high: CostPerRequestHigh = field(metadata=_nested(CostPerRequestHigh))
    gpu_xid_errors: GpuXidErrors = field(metadata=_nested(GpuXidErrors))
    gpu_throttled: GpuThrottled = field(metadata=_nested(GpuThrottled))
    kv_cache_near_full: KvCacheNearFull = field(metadata=_nested(KvCacheNearFull))
    metrics_absent: Hold = field(metadata=_nested(Hold))


def _key(field: dataclasses.Field[Any]) -> str:
    """The YAML key of a field (``for_`` is written ``for``)."""
    return field.name.rstrip("_")


def _build(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{path or 'settings'}: must be a mapping")
        return None
    fields = {_key(f): f for f in dataclasses.fields(cls)}
    problems.extend(f"{_join(path, str(key))}: unknown key" for key in data if key not in fields)
    before = len(problems)
    values = {f.name: _value(f, data, _join(path, key), problems) for key, f in fields.items()}
    return cls(**values) if len(problems) == before else None


def _value(field: dataclasses.Field[Any], data: dict[str, Any], where: str, problems: list[str]) -> Any:
    key = _key(field)
    if key not in data:
        problems.append(f"{where}: missing")
        return None
    if "section" in field.metadata:
        return _build(field.metadata["section"], data[key], where, problems)
    problem = field.metadata["check"](data[key])
    if problem is not None:
        problems.append(f"{where}: {problem}")
    return data[key]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse(text: str, source: str = "settings") -> Settings:
    """Parse settings from YAML text; raise ``SettingsError`` listing every problem."""
    try:
        data = load_yaml(text, source)
    except ConfigError as exc:
        raise SettingsError(source, exc.problems) from None
    problems: list[str] = []
    settings = _build(Settings, data, "", problems)
    if problems or settings is None:
        raise SettingsError(source, problems)
    assert isinstance(settings, Settings)
    return settings


def load(path: Path = DEFAULT_PATH) -> Settings:
    """Read and validate a settings file (``rules/settings.yml`` by default)."""
    return parse(path.read_text(encoding="utf-8"), str(path))
