"""vLLM's ``/metrics`` (V1 engine, and the names older releases used).

Sample of what it reads (data parallel: one series per ``engine``, summed per ``model_name``)::

    vllm:generation_tokens_total{engine="0",model_name="Qwen/Qwen3-8B"} 1297.0
    vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-8B"} 0.0
    vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-8B"} 0.0123

Renames handled: ``gpu_cache_usage_perc`` → ``kv_cache_usage_perc`` (0.10) and
``time_per_output_token_seconds`` → ``inter_token_latency_seconds`` (0.10.2). Counters move every
engine step, so short-window rates are honest. ``kv_cache_usage_perc`` is a 0..1 ratio despite its
name; across engines we take the largest, so one full engine shows.

Prefix cache: ``prompt_tokens_cached_total`` (newer releases: prompt tokens the scheduler skipped,
local cache hits plus external KV transfers, counted with ``prompt_tokens_total``), else
``prefix_cache_hits_total`` / ``gpu_prefix_cache_hits_total`` (cached tokens found when a request is
scheduled, so a request resumed after preemption counts again). ``prompt_tokens_recomputed_total`` is
*not* preemption waste (it counts the one token recomputed when a whole prompt hits the cache), and
vLLM has no counter of tokens recomputed after preemption (``num_preemptions_total`` counts events),
so recomputed tokens are absent. ``estimated_flops_per_gpu_total`` (``--enable-mfu-metrics``) is an
analytic estimate per engine step, already per GPU of its engine: averaged over engines.

``table`` takes the family prefix and the model label, so servers that re-export vLLM's families
(NVIDIA NIM for LLMs without a prefix, Triton's vLLM backend labelled ``model``) reuse this module.
"""

from __future__ import annotations

from exporter.model import TokenCounting
from exporter.sources.servers._families import Table, table_adapter

MODEL_LABEL = "model_name"

COUNTERS = {
    "prompt_tokens": ("prompt_tokens_total",),
    "generation_tokens": ("generation_tokens_total",),
    "requests_finished": ("request_success_total",),
    "prompt_cached_tokens": ("prompt_tokens_cached_total", "prefix_cache_hits_total", "gpu_prefix_cache_hits_total"),
}
"""Normalized field → family names, newest first."""
GAUGES = {
    "requests_running": ("num_requests_running",),
    "requests_waiting": ("num_requests_waiting",),
}
KV_CACHE = ("kv_cache_usage_perc", "gpu_cache_usage_perc")
PER_GPU = {"flops_per_gpu": ("estimated_flops_per_gpu_total",)}
HISTOGRAMS = {
    "time_to_first_token": ("time_to_first_token_seconds",),
    "inter_token_latency": ("inter_token_latency_seconds", "time_per_output_token_seconds"),
    "e2e_request_latency": ("e2e_request_latency_seconds",),
    "request_queue_time": ("request_queue_time_seconds",),
}


def table(prefix: str, model_label: str = MODEL_LABEL) -> Table:
    """vLLM's families under ``prefix``, per value of ``model_label``."""
    return Table(
        prefix=prefix,
        model_label=model_label,
        counters={field: tuple((family,) for family in families) for field, families in COUNTERS.items()},
        gauges=GAUGES,
        ratios={"kv_cache_usage_ratio": KV_CACHE},
        per_gpu_counters=PER_GPU,
        histograms=HISTOGRAMS,
    )


TABLE = table("vllm:")

ADAPTER = table_adapter(
    kind="vllm",
    description="vLLM 0.6 and newer (V1 engine names and the older ones)",
    table=TABLE,
    counting=TokenCounting.INCREMENTAL,
    example="vllm:generation_tokens_total",
)
