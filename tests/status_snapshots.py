"""Small, explicit snapshots for the status page's tests: servers with models, GPUs, sources up or down."""

from __future__ import annotations

from exporter.fakes.nvml import H100_MEMORY_BYTES, H100_NAME, fake_uuid
from exporter.model import (
    GpuSample,
    GpuShare,
    GpuView,
    ModelRates,
    ModelSample,
    ServerSample,
    ServerView,
    Snapshot,
    SourceStatus,
    TokenCounting,
)

T0 = 1_700_000_000.0


def rates(generation: float, *, gpus: int = 4, requests: float = 2.0, cost_per_second: float = 0.003) -> ModelRates:
    """Derived values consistent with ``generation`` tokens/s on ``gpus`` GPUs."""
    return ModelRates(
        prompt_tokens_per_second=generation * 3,
        generation_tokens_per_second=generation,
        requests_per_second=requests,
        generation_tokens_per_second_per_gpu=generation / gpus,
        cost_per_request=cost_per_second / requests,
        cost_per_million_generation_tokens=cost_per_second / generation * 1e6,
        energy_joules_per_generation_token=1600.0 / generation,
        # a fifth of the serving cost on prompt tokens (3 per generated one), the rest on generated ones
        prompt_cost_per_million_tokens=cost_per_second * 0.2 / (generation * 3) * 1e6,
        generation_cost_per_million_tokens=cost_per_second * 0.8 / generation * 1e6,
        prompt_cache_hit_ratio=0.25,
        energy_joules_per_token=1600.0 / (generation * 4),
        flops_per_second_per_gpu=generation * 1.4e11 / gpus,
        model_flops_utilization_ratio=generation * 1.4e11 / gpus / 989.4e12,
    )


def server(
    name: str,
    models: dict[str, float],
    *,
    t: float = T0,
    gpus: tuple[int, ...] = (0, 1, 2, 3),
    waiting: float = 0.0,
    running: float = 12.0,
    requests: float = 2.0,
) -> ServerView:
    """An up server whose models generate the given tokens/s."""
    samples = {
        model: ModelSample(
            prompt_tokens=1e6,
            generation_tokens=2e6,
            requests_finished=1e4,
            requests_running=running,
            requests_waiting=waiting,
            kv_cache_usage_ratio=0.4,
        )
        for model in models
    }
    return ServerView(
        name=name,
        status=SourceStatus(up=True, duration_seconds=0.004, last_success_unix=t),
        sample=ServerSample(kind="vllm", models=samples, token_counting=TokenCounting.INCREMENTAL, version="0.9.1"),
        gpus=tuple(GpuShare(i, fake_uuid(f"gpu-{i}"), 1.0) for i in gpus),
        rates={model: rates(generation, gpus=len(gpus), requests=requests) for model, generation in models.items()},
        cost_per_second=0.003,
        power_watts=1600.0,
        idle_cost_per_second=0.0006,
        cost_split="token_weight",
    )


def down(
    name: str, *, t: float = T0, last_success: float | None = T0 - 30, error: str = "connection refused"
) -> ServerView:
    """A server whose last poll failed."""
    return ServerView(
        name=name,
        status=SourceStatus(up=False, duration_seconds=0.001, last_success_unix=last_success, error=error),
        sample=None,
        gpus=(),
        rates={},
    )


def gpu(index: int, load: float = 0.5, *, clock_events: frozenset[str] | None = None) -> GpuView:
    """An H100 at ``load``."""
    return GpuView(
        sample=GpuSample(
            index=index,
            uuid=fake_uuid(f"gpu-{index}"),
            name=H100_NAME,
            utilization_ratio=load,
            memory_used_bytes=H100_MEMORY_BYTES * 0.9,
            memory_total_bytes=float(H100_MEMORY_BYTES),
            power_watts=70 + 630 * load,
            energy_joules=1e9,
            temperature_celsius=32 + 40 * load,
            clock_events=clock_events,
        ),
        hourly_cost=3.0,
        generation_tokens_per_second=250.0 * load,
    )


def snapshot(
    t: float = T0,
    servers: tuple[ServerView, ...] = (),
    gpus: tuple[GpuView, ...] = (),
    *,
    lost: tuple[tuple[int, str], ...] = (),
    nvml_up: bool = True,
) -> Snapshot:
    """A ready snapshot taken at unix time ``t``."""
    nvml = SourceStatus(up=nvml_up, duration_seconds=0.002, last_success_unix=t, error=None if nvml_up else "no driver")
    return Snapshot(
        taken_at_unix=t,
        servers=servers,
        gpus=gpus,
        lost_gpus=lost,
        nvml=nvml,
        driver_version="570.86.15",
        currency="EUR",
        ready=True,
        node_cost_per_second=len(gpus) * 3.0 / 3600 if nvml_up else None,
        unattributed_cost_per_second=0.0 if nvml_up else None,
    )
