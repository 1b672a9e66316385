"""Turn a ``Snapshot`` into metric families, in a fixed order.

A server that is down keeps only ``inference_server_up 0``, its poll duration and last success: its
other series are dropped rather than served stale. A value that is ``None`` is left out.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator

from exporter import __version__
from exporter.exposition import metrics as m
from exporter.exposition.deployment_families import deployment_families
from exporter.exposition.gpu_families import attribution_families, gpu_detail_families, gpu_key
from exporter.exposition.text import Family, Sample
from exporter.model import GpuView, ModelRates, ModelSample, ServerView, Snapshot


def families(snapshot: Snapshot) -> list[Family]:
    """Every family with its samples, exporter metrics last."""
    return [
        *_server_families(snapshot),
        *attribution_families(snapshot),
        *_model_families(snapshot),
        *deployment_families(snapshot),
        *_gpu_families(snapshot),
        *gpu_detail_families(snapshot),
        *_meta(snapshot),
    ]


def _server_families(snapshot: Snapshot) -> Iterator[Family]:
    servers = snapshot.servers
    polled = [s for s in servers if s.role != "worker"]  # a worker has no /metrics: no up, no poll
    up = [s for s in servers if s.sample is not None]
    priced = [s for s in servers if s.priced]
    yield m.SERVER_UP, [((s.name,), 1.0 if s.status.up else 0.0) for s in polled]
    yield (
        m.SERVER_INFO,
        [
            ((s.name, s.sample.kind, s.sample.version, s.sample.token_counting.value), 1.0)
            for s in up
            if s.sample is not None
        ],
    )
    yield m.SERVER_GPUS, [((s.name,), float(len(s.gpus))) for s in servers]
    yield (
        m.SERVER_GPU_INFO,
        [(key, 1.0) for key in dict.fromkeys((s.name, str(g.index), g.uuid) for s in priced for g in s.gpus)],
    )
    yield m.SERVER_POLL_DURATION, [((s.name,), s.status.duration_seconds) for s in polled]
    yield (
        m.SERVER_LAST_SUCCESS,
        [((s.name,), s.status.last_success_unix) for s in polled if s.status.last_success_unix is not None],
    )
    yield m.SERVER_COST, [((s.name,), s.cost_per_second) for s in priced if s.cost_per_second is not None]
    yield m.SERVER_POWER, [((s.name,), s.power_watts) for s in priced if s.power_watts is not None]
    yield m.SERVER_IDLE_COST, [((s.name,), s.idle_cost_per_second) for s in up if s.idle_cost_per_second is not None]
    yield m.COST_SPLIT_INFO, [((s.name, s.cost_split), 1.0) for s in up if s.cost_split is not None]
    if snapshot.node_cost_per_second is not None:
        yield m.NODE_COST, [((), snapshot.node_cost_per_second)]
    if snapshot.unattributed_cost_per_second is not None:
        yield m.UNATTRIBUTED_COST, [((), snapshot.unattributed_cost_per_second)]


_SAMPLE_FIELDS: tuple[tuple[m.Metric, Callable[[ModelSample], float | None]], ...] = (
    (m.PROMPT_TOKENS, lambda s: s.prompt_tokens),
    (m.GENERATION_TOKENS, lambda s: s.generation_tokens),
    (m.REQUESTS_FINISHED, lambda s: s.requests_finished),
    (m.REQUESTS_RUNNING, lambda s: s.requests_running),
    (m.REQUESTS_WAITING, lambda s: s.requests_waiting),
    (m.KV_CACHE, lambda s: s.kv_cache_usage_ratio),
    (m.PROMPT_CACHED_TOKENS, lambda s: s.prompt_cached_tokens),
)
_RATE_FIELDS: tuple[tuple[m.Metric, Callable[[ModelRates], float | None]], ...] = (
    (m.PROMPT_TPS, lambda r: r.prompt_tokens_per_second),
    (m.GENERATION_TPS, lambda r: r.generation_tokens_per_second),
    (m.REQUESTS_PS, lambda r: r.requests_per_second),
    (m.GENERATION_TPS_PER_GPU, lambda r: r.generation_tokens_per_second_per_gpu),
    (m.COST_PER_REQUEST, lambda r: r.cost_per_request),
    (m.COST_PER_MTOK, lambda r: r.cost_per_million_generation_tokens),
    (m.JOULES_PER_TOKEN, lambda r: r.energy_joules_per_generation_token),
    (m.PROMPT_CACHE_HIT, lambda r: r.prompt_cache_hit_ratio),
    (m.JOULES_PER_ANY_TOKEN, lambda r: r.energy_joules_per_token),
    (m.FLOPS_PER_GPU, lambda r: r.flops_per_second_per_gpu),
    (m.MFU, lambda r: r.model_flops_utilization_ratio),
)
_PHASES: tuple[tuple[str, Callable[[ModelSample], float | None], Callable[[ModelRates], float | None]], ...] = (
    ("prompt", lambda s: s.recomputed_prompt_tokens, lambda r: r.prompt_cost_per_million_tokens),
    ("generation", lambda s: s.recomputed_generation_tokens, lambda r: r.generation_cost_per_million_tokens),
)
"""The ``phase`` label's values, with the sample's recomputed tokens and the rates' price of each."""


def _models(servers: tuple[ServerView, ...]) -> Iterator[tuple[ServerView, str, ModelSample]]:
    for server in servers:
        if server.sample is not None:
            for model, sample in server.sample.models.items():
                yield server, model, sample


def _model_families(snapshot: Snapshot) -> Iterator[Family]:
    models = list(_models(snapshot.servers))
    keys = [(server.name, model) for server, model, _ in models]
    for metric, get in _SAMPLE_FIELDS:
        yield metric, _pairs(keys, [get(sample) for _, _, sample in models])
    rates = [s.rates.get(model) for s, model, _ in models]
    for metric, get_rate in _RATE_FIELDS:
        yield metric, _pairs(keys, [get_rate(r) if r is not None else None for r in rates])
    yield from _phase_families(keys, [sample for _, _, sample in models], rates)
    for name, metric in m.HISTOGRAMS.items():
        yield (
            metric,
            [
                (key, sample.histograms[name])
                for key, (_, _, sample) in zip(keys, models, strict=True)
                if name in sample.histograms
            ],
        )


def _phase_families(
    keys: list[tuple[str, str]], samples: list[ModelSample], rates: list[ModelRates | None]
) -> Iterator[Family]:
    """The families with a ``phase`` label: recomputed tokens, and the cost per million tokens of each phase."""
    recomputed: list[Sample] = []
    prices: list[Sample] = []
    for key, sample, rate in zip(keys, samples, rates, strict=True):
        for phase, get_count, get_price in _PHASES:
            if (count := get_count(sample)) is not None:
                recomputed.append(((*key, phase), count))
            if rate is not None and (price := get_price(rate)) is not None:
                prices.append(((*key, phase), price))
    yield m.RECOMPUTED_TOKENS, recomputed
    yield m.COST_PER_MTOK_PHASE, prices


def _pairs(keys: list[tuple[str, str]], values: list[float | None]) -> list[Sample]:
    """Pair label values with values, leaving out ``None``."""
    return [(key, value) for key, value in zip(keys, values, strict=True) if value is not None]


def _gpu_families(snapshot: Snapshot) -> Iterator[Family]:
    if snapshot.nvml is not None:
        yield m.NVML_UP, [((), 1.0 if snapshot.nvml.up else 0.0)]
        yield m.NVML_POLL_DURATION, [((), snapshot.nvml.duration_seconds)]
        if snapshot.nvml.last_success_unix is not None:
            yield m.NVML_LAST_SUCCESS, [((), snapshot.nvml.last_success_unix)]
    gpus = snapshot.gpus
    yield (
        m.GPU_INFO,
        [((str(g.sample.index), g.sample.uuid, g.sample.name, snapshot.driver_version), 1.0) for g in gpus],
    )
    yield m.GPU_UP, [*((gpu_key(g), 1.0) for g in gpus), *(((str(i), u), 0.0) for i, u in snapshot.lost_gpus)]
    for metric, get in _GPU_FIELDS:
        yield metric, [(gpu_key(g), v) for g in gpus if (v := get(g)) is not None]


_GPU_FIELDS: tuple[tuple[m.Metric, Callable[[GpuView], float | None]], ...] = (
    (m.GPU_UTILIZATION, lambda g: g.sample.utilization_ratio),
    (m.GPU_MEMORY_USED, lambda g: g.sample.memory_used_bytes),
    (m.GPU_MEMORY_TOTAL, lambda g: g.sample.memory_total_bytes),
    (m.GPU_POWER, lambda g: g.sample.power_watts),
    (m.GPU_ENERGY, lambda g: g.energy_joules),
    (m.GPU_TEMPERATURE, lambda g: g.sample.temperature_celsius),
    (m.GPU_HOURLY_COST, lambda g: g.hourly_cost),
    (m.GPU_GENERATION_TPS, lambda g: g.generation_tokens_per_second),
)


def _meta(snapshot: Snapshot) -> Iterator[Family]:
    yield m.PRICING_INFO, [((snapshot.currency,), 1.0)]
    yield m.BUILD_INFO, [((__version__, platform.python_version()), 1.0)]
    yield m.SNAPSHOT_TIMESTAMP, [((), snapshot.taken_at_unix)]
    yield m.MISSED_POLLS, [((), float(snapshot.missed_polls))]
    yield m.LOOP_ERRORS, [((loop,), float(count)) for loop, count in snapshot.loop_errors]
    yield m.EVENT_LOOP_LAG, [((), snapshot.event_loop_lag_seconds)]
    if snapshot.config_reload is not None:
        yield m.CONFIG_RELOAD_SUCCESS, [((), 1.0 if snapshot.config_reload.successful else 0.0)]
        yield m.CONFIG_RELOAD_TIMESTAMP, [((), snapshot.config_reload.last_success_unix)]
