"""What the status page shows for each model and GPU, and how each figure reads as text.

Every figure is one series of ``/metrics``: it names its ``Metric`` and takes its value from the same
snapshot field the exposition renders, so the page and a scrape of the same snapshot agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from exporter.exposition import metrics as m
from exporter.model import GpuView, ModelRates, ModelSample, ServerView, Snapshot

GIB = 1024.0**3
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One server and model in one snapshot."""

    server: ServerView
    model: str
    sample: ModelSample
    rates: ModelRates | None


@dataclass(frozen=True, slots=True)
class Spec(Generic[T]):
    """One figure: the metric it shows, its caption, how its value reads, and where the value comes from."""

    metric: m.Metric
    caption: str
    text: Callable[[float, str], str]
    """Value and currency to text, such as ``1,234 tok/s``."""
    get: Callable[[T], float | None]
    labels: tuple[tuple[str, str], ...] = ()
    """Labels of the series beyond the card's own (the ``phase`` of a price)."""


def format_number(value: float) -> str:
    """Three significant digits or more, with thousands separators: ``12,345``, ``123``, ``12.3``, ``0.0123``, ``7``."""
    if not math.isfinite(value):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(value, "NaN")
    size = abs(value)
    if size >= 100 or value == int(value):
        return f"{value:,.0f}"
    if size < 1e-9:
        return f"{value:.2e}"
    decimals = 2 - math.floor(math.log10(size))
    text = f"{value:.{decimals}f}"
    return text if abs(float(text)) < 100 else f"{value:,.0f}"


def unit(suffix: str) -> Callable[[float, str], str]:
    return lambda value, _currency: f"{format_number(value)}{suffix}"


def money(value: float, currency: str) -> str:
    return f"{format_number(value)} {currency}"


def _percent(value: float, _currency: str) -> str:
    return f"{format_number(round(value * 100, 9))} %"


def _gib(value: float, _currency: str) -> str:
    return f"{format_number(value / GIB)} GiB"


def per_hour(value: float, currency: str) -> str:
    """A cost per second, shown per hour: ``24.2 USD/h``."""
    return f"{format_number(value * 3600.0)} {currency}/h"


def _teraflops(value: float, _currency: str) -> str:
    return f"{format_number(value / 1e12)} TFLOP/s"


def _rate(get: Callable[[ModelRates], float | None]) -> Callable[[ModelRow], float | None]:
    return lambda row: get(row.rates) if row.rates is not None else None


MODEL_SPECS: tuple[Spec[ModelRow], ...] = (
    Spec(m.GENERATION_TPS, "Generation", unit(" tok/s"), _rate(lambda r: r.generation_tokens_per_second)),
    Spec(
        m.GENERATION_TPS_PER_GPU,
        "Per GPU",
        unit(" tok/s"),
        _rate(lambda r: r.generation_tokens_per_second_per_gpu),
    ),
    Spec(m.REQUESTS_PS, "Requests", unit(" req/s"), _rate(lambda r: r.requests_per_second)),
    Spec(m.REQUESTS_RUNNING, "Running", unit(""), lambda row: row.sample.requests_running),
    Spec(m.REQUESTS_WAITING, "Waiting", unit(""), lambda row: row.sample.requests_waiting),
    Spec(m.COST_PER_REQUEST, "Cost per request", money, _rate(lambda r: r.cost_per_request)),
    Spec(m.COST_PER_MTOK, "Cost per million tokens", money, _rate(lambda r: r.cost_per_million_generation_tokens)),
    Spec(m.JOULES_PER_TOKEN, "Energy per token", unit(" J/tok"), _rate(lambda r: r.energy_joules_per_generation_token)),
    Spec(m.PROMPT_CACHE_HIT, "Prompt cache hits", _percent, _rate(lambda r: r.prompt_cache_hit_ratio)),
    Spec(m.JOULES_PER_ANY_TOKEN, "Energy, all tokens", unit(" J/tok"), _rate(lambda r: r.energy_joules_per_token)),
    Spec(m.FLOPS_PER_GPU, "Compute per GPU", _teraflops, _rate(lambda r: r.flops_per_second_per_gpu)),
    Spec(m.MFU, "FLOP utilization", _percent, _rate(lambda r: r.model_flops_utilization_ratio)),
)
"""Per server and model, in the order shown."""

NODE_SPECS: tuple[Spec[Snapshot], ...] = (
    Spec(m.NODE_COST, "Node, all GPUs", per_hour, lambda s: s.node_cost_per_second),
    Spec(m.UNATTRIBUTED_COST, "GPUs no server claims", per_hour, lambda s: s.unattributed_cost_per_second),
)
"""The node's cost, in the cost section."""

SERVER_COST_SPECS: tuple[Spec[ServerView], ...] = (
    Spec(m.SERVER_COST, "Server", per_hour, lambda s: s.cost_per_second if s.priced else None),
    Spec(m.SERVER_IDLE_COST, "Idle", per_hour, lambda s: s.idle_cost_per_second if s.sample is not None else None),
)
"""Each server's cost and the idle part of it, in the cost section."""

PRICE_SPECS: tuple[Spec[ModelRow], ...] = (
    Spec(
        m.COST_PER_MTOK_PHASE,
        "Prompt, per 1M tokens",
        money,
        _rate(lambda r: r.prompt_cost_per_million_tokens),
        (("phase", "prompt"),),
    ),
    Spec(
        m.COST_PER_MTOK_PHASE,
        "Generated, per 1M tokens",
        money,
        _rate(lambda r: r.generation_cost_per_million_tokens),
        (("phase", "generation"),),
    ),
)
"""Each model's price per million prompt and generated tokens, in its server's cost card."""

GPU_SPECS: tuple[Spec[GpuView], ...] = (
    Spec(m.GPU_UTILIZATION, "Utilization", _percent, lambda g: g.sample.utilization_ratio),
    Spec(m.GPU_POWER, "Power", unit(" W"), lambda g: g.sample.power_watts),
    Spec(m.GPU_MEMORY_USED, "Memory used", _gib, lambda g: g.sample.memory_used_bytes),
    Spec(m.GPU_TEMPERATURE, "Temperature", unit(" °C"), lambda g: g.sample.temperature_celsius),
    Spec(m.GPU_GENERATION_TPS, "Attributed", unit(" tok/s"), lambda g: g.generation_tokens_per_second),
)
"""Per GPU, in the order shown."""


def model_rows(servers: tuple[ServerView, ...]) -> list[ModelRow]:
    """Every server and model of a snapshot whose server answered its last poll."""
    return [
        ModelRow(server, model, sample, server.rates.get(model))
        for server in servers
        if server.sample is not None
        for model, sample in server.sample.models.items()
    ]


def display(spec: Spec[T], value: float | None, currency: str) -> str:
    """The figure as text, ``n/a`` when the value is undefined (left out of ``/metrics`` too)."""
    return "n/a" if value is None else spec.text(value, currency)


CLOCK_EVENT_WORDS = {
    "gpu_idle": "idle",
    "applications_clocks_setting": "application clock setting",
    "sw_power_cap": "power cap",
    "hw_slowdown": "hardware slowdown",
    "sync_boost": "sync boost",
    "sw_thermal_slowdown": "thermal slowdown (software)",
    "hw_thermal_slowdown": "thermal slowdown (hardware)",
    "hw_power_brake_slowdown": "power brake",
    "display_clock_setting": "display clock setting",
}
"""Each NVML clock event reason (``inference_gpu_clock_event_active``'s ``reason``) in words."""

THROTTLE_REASONS = frozenset(
    {"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)
"""The reasons that mean the GPU runs slower than it could under its load."""


def throttled(events: frozenset[str] | None) -> bool:
    """Whether any active clock event holds the GPU back under load."""
    return bool(events and events & THROTTLE_REASONS)


def clocks_text(events: frozenset[str] | None) -> str:
    """The GPU's clock events in one sentence: throttling first, else why clocks are low; ``""`` if unknown."""
    if events is None:
        return ""
    words = [CLOCK_EVENT_WORDS.get(e, e.replace("_", " ")) for e in sorted(events, key=_reason_order)]
    if throttled(events):
        held = [CLOCK_EVENT_WORDS.get(e, e) for e in sorted(events & THROTTLE_REASONS, key=_reason_order)]
        return f"Throttled: {', '.join(held)}."
    if words:
        return f"Clocks held by: {', '.join(words)}."
    return "Clocks: not held back."


def _reason_order(reason: str) -> tuple[int, str]:
    order = list(CLOCK_EVENT_WORDS)
    return (order.index(reason) if reason in order else len(order), reason)
