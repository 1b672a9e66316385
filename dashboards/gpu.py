"""The GPU dashboard: load, power and energy, memory, heat, clocks and their reasons, errors, and MIG.

A throughput drop is often explained here: a clock-event reason that holds the clocks down, an XID
error, a lost GPU. Per-GPU attributed tokens/s ties each GPU back to the servers it serves.
"""

from __future__ import annotations

from typing import Any

from dashboards.grafana import (
    BYTES,
    CELSIUS,
    EVENTS,
    GPU,
    GPUS,
    HERTZ,
    JOULES,
    RATIO,
    TOKENS_PER_SECOND,
    WATTS,
    Json,
    Panel,
    Row,
    bargauge,
    dashboard,
    stat,
    state_timeline,
    table,
    target,
    timeseries,
    value_map,
)

UID = "inference-gpu"
PER_GPU = "GPU {{gpu}} ({{instance}})"
MIG_INFO = f"inference_mig_device_info{{{GPU}}}"
PER_MIG = "GPU {{gpu}} {{profile}} GI {{gpu_instance}} ({{instance}})"


def _gpu_series(title: str, description: str, unit: str, metric: str, width: int = 12, **options: Any) -> Panel:
    return timeseries(title, description, unit, target(f"{metric}{{{GPU}}}", PER_GPU), width=width, **options)


def _summary() -> list[Panel | Row]:
    return [
        stat("GPUs up", "GPUs that NVML reads.", GPUS, target(f"count(inference_gpu_up{{{GPU}}} == 1)"), width=6),
        stat(
            "Mean utilization",
            "Mean utilization of the selected GPUs.",
            RATIO,
            target(f"avg(inference_gpu_utilization_ratio{{{GPU}}})"),
            width=6,
        ),
        stat(
            "Power",
            "Power drawn by the selected GPUs.",
            WATTS,
            target(f"sum(inference_gpu_power_watts{{{GPU}}})"),
            width=6,
        ),
        stat(
            "Hottest GPU",
            "Highest core temperature of the selected GPUs.",
            CELSIUS,
            target(f"max(inference_gpu_temperature_celsius{{{GPU}}})"),
            width=6,
        ),
    ]


def _load() -> list[Panel | Row]:
    return [
        Row("Load"),
        _gpu_series(
            "Utilization",
            "Share of time in which a kernel ran.",
            RATIO,
            "inference_gpu_utilization_ratio",
            min=0,
            max=1,
        ),
        _gpu_series(
            "Attributed generation tokens/s",
            "Each server's generation tokens/s split over its GPUs, summed per GPU.",
            TOKENS_PER_SECOND,
            "inference_gpu_generation_tokens_per_second",
        ),
    ]


def _power() -> list[Panel | Row]:
    return [
        Row("Power and energy"),
        timeseries(
            "Power draw and limit",
            "Power drawn by each GPU, and its enforced power limit.",
            WATTS,
            target(f"inference_gpu_power_watts{{{GPU}}}", PER_GPU),
            target(f"inference_gpu_power_limit_watts{{{GPU}}}", "limit " + PER_GPU),
        ),
        bargauge(
            "Energy in the time range",
            "Energy each GPU used over the dashboard's time range, from NVML's energy counter.",
            JOULES,
            target(f"increase(inference_gpu_energy_joules_total{{{GPU}}}[$__range])", PER_GPU, instant=True),
        ),
    ]


def _memory_heat_clocks() -> list[Panel | Row]:
    return [
        Row("Memory, heat and clocks"),
        _gpu_series("Memory used", "GPU memory in use.", BYTES, "inference_gpu_memory_used_bytes", width=8),
        _gpu_series("Temperature", "GPU core temperature.", CELSIUS, "inference_gpu_temperature_celsius", width=8),
        timeseries(
            "Clocks",
            "SM and memory clock of each GPU.",
            HERTZ,
            target(f"inference_gpu_sm_clock_hertz{{{GPU}}}", "SM " + PER_GPU),
            target(f"inference_gpu_memory_clock_hertz{{{GPU}}}", "memory " + PER_GPU),
            width=8,
        ),
        timeseries(
            "Clock-event reasons",
            "How many of the selected GPUs have each clock-event reason active (power cap, thermal, idle...).",
            GPUS,
            target(f"sum by (reason) (inference_gpu_clock_event_active{{{GPU}}})", "{{reason}}"),
            width=24,
        ),
    ]


def _errors() -> list[Panel | Row]:
    return [
        Row("Errors"),
        timeseries(
            "XID errors",
            "XID events reported by the driver, per GPU and XID.",
            EVENTS,
            target(
                "sum by (job, instance, gpu, xid)"
                f" (increase(inference_gpu_xid_errors_total{{{GPU}}}[$__rate_interval]))",
                "GPU {{gpu}} XID {{xid}} ({{instance}})",
            ),
            width=8,
            bars=True,
        ),
        timeseries(
            "ECC errors",
            "Corrected and uncorrected ECC memory errors, per GPU.",
            EVENTS,
            target(
                "sum by (job, instance, gpu, type)"
                f" (increase(inference_gpu_ecc_errors_total{{{GPU}}}[$__rate_interval]))",
                "GPU {{gpu}} {{type}} ({{instance}})",
            ),
            width=8,
            bars=True,
        ),
        state_timeline(
            "GPU up",
            "Whether NVML can read each GPU (lost: fallen off the bus or reset).",
            target(f"inference_gpu_up{{{GPU}}}", PER_GPU),
            value_map(("0", "lost", "red"), ("1", "up", "green")),
            width=8,
        ),
    ]


GPM_METRICS = (
    ("SM activity", "Share of time the SMs had work.", "inference_gpu_sm_activity_ratio"),
    (
        "SM occupancy",
        "Warps resident on the SMs, as a share of the most they can hold.",
        "inference_gpu_sm_occupancy_ratio",
    ),
    ("Tensor activity", "Share of time the tensor cores were busy.", "inference_gpu_tensor_activity_ratio"),
    ("DRAM bandwidth", "Share of the memory bandwidth in use.", "inference_gpu_dram_bandwidth_utilization_ratio"),
)


def _gpm() -> list[Panel | Row]:
    note = " From GPM (Hopper and newer), read when the exporter's config sets gpu.gpm: true."
    return [
        Row("Profiling (GPM)"),
        *(
            _gpu_series(title, description + note, RATIO, metric, width=6, min=0, max=1)
            for title, description, metric in GPM_METRICS
        ),
    ]


def _mig() -> list[Panel | Row]:
    with_profile = "* on(job, instance, mig_uuid) group_left(profile, gpu_instance) " + MIG_INFO
    return [
        Row("MIG instances"),
        table(
            "MIG layout",
            "Each MIG instance: its parent GPU, GPU and compute instance, and profile.",
            "none",
            target(MIG_INFO, table=True),
            ("Value", "job"),
            width=8,
        ),
        timeseries(
            "MIG memory used",
            "Memory in use in each MIG instance.",
            BYTES,
            target(f"inference_mig_device_memory_used_bytes{{{GPU}}} {with_profile}", PER_MIG),
            width=8,
        ),
        timeseries(
            "MIG SM activity",
            "Share of time the SMs of each MIG instance were busy, from GPM (the exporter's gpu.gpm: true).",
            RATIO,
            target(f"inference_mig_device_sm_activity_ratio{{{GPU}}} {with_profile}", PER_MIG),
            width=8,
            min=0,
            max=1,
        ),
    ]


def build() -> Json:
    """The GPU dashboard."""
    return dashboard(
        UID,
        "Inference / GPUs",
        "Every GPU of the selected nodes: load, power, energy, memory, heat, clocks, errors and MIG instances.",
        ("job", "instance", "gpu"),
        [*_summary(), *_load(), *_power(), *_memory_heat_clocks(), *_gpm(), *_errors(), *_mig()],
    )
