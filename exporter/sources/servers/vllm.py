"""vLLM's ``/metrics`` (V1 engine, and the names older releases used).

Sample of what it reads (data parallel: one series per ``engine``, summed per ``model_name``)::

    vllm:generation_tokens_total{engine="0",model_name="Qwen/Qwen3-8B"} 1297.0
    vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-8B"} 0.0
    vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-8B"} 0.0123

Renames handled: ``gpu_cache_usage_perc`` → ``kv_cache_usage_perc`` (0.10) and
``time_per_output_token_seconds`` → ``inter_token_latency_seconds`` (0.10.2). Counters move every
engine step, so short-window rates are honest. ``kv_cache_usage_perc`` is a 0..1 ratio despite its
name; across engines we take the largest, so one full engine shows.

``parse_families`` takes the family prefix, so servers that re-export vLLM's families under another
prefix (NVIDIA NIM for LLMs uses none) reuse this module.
"""

from __future__ import annotations

from exporter.model import Histogram, ModelSample, ServerSample, TokenCounting
from exporter.sources.servers._base import Adapter, ParseError, register
from exporter.sources.servers._text import (
    Series,
    gauge_sum_by,
    histograms_by,
    max_by,
    mentions,
    process_start_time,
    scan,
    sum_by,
)

MODEL_LABEL = "model_name"

COUNTERS = {
    "prompt_tokens": ("prompt_tokens_total",),
    "generation_tokens": ("generation_tokens_total",),
    "requests_finished": ("request_success_total",),
}
"""Normalized field → family names, newest first."""
GAUGES = {
    "requests_running": ("num_requests_running",),
    "requests_waiting": ("num_requests_waiting",),
}
KV_CACHE = ("kv_cache_usage_perc", "gpu_cache_usage_perc")
HISTOGRAMS = {
    "time_to_first_token": ("time_to_first_token_seconds",),
    "inter_token_latency": ("inter_token_latency_seconds", "time_per_output_token_seconds"),
    "e2e_request_latency": ("e2e_request_latency_seconds",),
    "request_queue_time": ("request_queue_time_seconds",),
}


def wanted_names(prefix: str) -> frozenset[str]:
    """Every sample name the parser reads, for a family prefix such as ``vllm:``."""
    names: set[str] = {"process_start_time_seconds"}
    for families in (*COUNTERS.values(), *GAUGES.values(), KV_CACHE):
        names.update(prefix + f for f in families)
    for families in HISTOGRAMS.values():
        for family in families:
            names.update(f"{prefix}{family}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return frozenset(names)


def _first(found: dict[str, Series], prefix: str, families: tuple[str, ...]) -> tuple[str, Series] | None:
    for family in families:
        if prefix + family in found:
            return prefix + family, found[prefix + family]
    return None


def parse_families(text: str, prefix: str, kind: str) -> ServerSample:
    """Parse a body whose families follow vLLM's names under ``prefix``."""
    found = scan(text, wanted_names(prefix))
    fields: dict[str, dict[str, float | None]] = {}
    for field, families in COUNTERS.items():
        hit = _first(found, prefix, families)
        fields[field] = dict(sum_by(hit[1], MODEL_LABEL)) if hit else {}
    for field, families in GAUGES.items():
        hit = _first(found, prefix, families)
        fields[field] = dict(gauge_sum_by(hit[1], MODEL_LABEL)) if hit else {}
    kv = _first(found, prefix, KV_CACHE)
    fields["kv_cache_usage_ratio"] = dict(max_by(kv[1], MODEL_LABEL)) if kv else {}
    histograms = _histograms(found, prefix)
    models = {m for values in fields.values() for m in values} | {m for h in histograms.values() for m in h}
    if not models:
        raise ParseError(f"no {kind} metrics found (expected families such as {prefix}generation_tokens_total)")
    return ServerSample(
        kind=kind,
        models={m: _model(m, fields, histograms) for m in sorted(models)},
        token_counting=TokenCounting.INCREMENTAL,
        process_start_time_seconds=process_start_time(found),
    )


def _histograms(found: dict[str, Series], prefix: str) -> dict[str, dict[str, Histogram]]:
    out: dict[str, dict[str, Histogram]] = {}
    for name, families in HISTOGRAMS.items():
        for family in families:
            per_model = histograms_by(found, prefix + family, MODEL_LABEL)
            if per_model:
                out[name] = per_model
                break
    return out


def _model(
    model: str, fields: dict[str, dict[str, float | None]], histograms: dict[str, dict[str, Histogram]]
) -> ModelSample:
    def value(field: str) -> float | None:
        return fields[field].get(model)

    ratio = value("kv_cache_usage_ratio")
    return ModelSample(
        prompt_tokens=value("prompt_tokens"),
        generation_tokens=value("generation_tokens"),
        requests_finished=value("requests_finished"),
        requests_running=value("requests_running"),
        requests_waiting=value("requests_waiting"),
        kv_cache_usage_ratio=min(max(ratio, 0.0), 1.0) if ratio is not None else None,
        histograms={name: per_model[model] for name, per_model in histograms.items() if model in per_model},
    )


def parse(text: str) -> ServerSample:
    """Parse a vLLM ``/metrics`` body."""
    return parse_families(text, "vllm:", "vllm")


def detect(text: str) -> bool:
    """A vLLM body has ``vllm:`` families."""
    return mentions(text, "vllm:")


ADAPTER = register(
    Adapter(
        kind="vllm",
        description="vLLM 0.6 and newer (V1 engine names and the older ones)",
        parse=parse,
        detect=detect,
        priority=50,
    )
)
