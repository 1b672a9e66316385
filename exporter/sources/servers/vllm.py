"""vLLM's ``/metrics`` (V1 engine, and the names older releases used), also as Ray Serve and Dynamo serve it.

Sample of what it reads (data parallel: one series per ``engine``, summed per ``model_name``)::

    vllm:generation_tokens_total{engine="0",model_name="Qwen/Qwen3-8B"} 1297.0
    vllm:num_requests_waiting{engine="0",model_name="Qwen/Qwen3-8B"} 0.0
    vllm:kv_cache_usage_perc{engine="0",model_name="Qwen/Qwen3-8B"} 0.0123

Renames handled: ``gpu_cache_usage_perc`` → ``kv_cache_usage_perc`` (0.10) and
``time_per_output_token_seconds`` → ``inter_token_latency_seconds`` (0.10.2). Counters move every
engine step, so short-window rates are honest. ``kv_cache_usage_perc`` is a 0..1 ratio despite its
name; across engines we take the largest, so one full engine shows. With ``--api-server-count``
above 1, a vLLM before PR #28792 renders ``kv_cache_usage_perc`` once per API-server process (a
``pid`` label, one process holding the engine's value): the largest is kept, never the sum.

The same families reach us from other stacks:

- a **Dynamo worker** (``python -m dynamo.vllm``) serves them unchanged beside its own
  ``dynamo_component_*`` families (ignored) and a ``*_created`` gauge per counter (ignored);
- **Ray Serve LLM** re-exports them as ``ray_vllm_*`` (V1: the colon replaced) or ``ray_vllm:*``
  (older), with Ray's ``WorkerId``, ``ReplicaId``, ``SessionName``, ... labels, summed away per model.
  Ray exports a counter only once it has moved, so a model Ray shows without one has counted 0.

Detection: a vLLM engine shows its token or request counters. The vLLM production-stack router
also serves ``vllm:`` families (gauges per backend ``server``, ``vllm:current_qps``, its own
``vllm:input_tokens_total``) but never those, and is refused with the engines to point at instead.

Prefix cache: ``prompt_tokens_cached_total`` (newer releases: prompt tokens the scheduler skipped,
local cache hits plus external KV transfers, counted with ``prompt_tokens_total``), else
``prefix_cache_hits_total`` / ``gpu_prefix_cache_hits_total`` (cached tokens found when a request is
scheduled, so a request resumed after preemption counts again). ``prompt_tokens_recomputed_total`` is
*not* preemption waste (it counts the one token recomputed when a whole prompt hits the cache), and
vLLM has no counter of tokens recomputed after preemption (``num_preemptions_total`` counts events),
so recomputed tokens are absent. ``estimated_flops_per_gpu_total`` (``--enable-mfu-metrics``) is an
analytic estimate per engine step, already per GPU of its engine: averaged over engines.

``table`` takes the family prefix and the model label, so servers that re-export vLLM's families
(NVIDIA NIM for LLMs without a prefix, Triton's vLLM backend labelled ``model``, Aphrodite under
``aphrodite:``) reuse this module.
"""

from __future__ import annotations

import re

from exporter.model import TokenCounting
from exporter.sources.servers._base import Refusal, Verdict
from exporter.sources.servers._families import Table, table_adapter
from exporter.sources.servers._text import mentions

PREFIX = "vllm:"
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
ENGINE_COUNTERS = ("prompt_tokens_total", "generation_tokens_total", "request_success_total")
"""Families an engine always serves (created at 0 when it starts) and the router never does (it copies
others, such as ``vllm:gpu_prefix_cache_hits_total``, as gauges)."""
RAY_PREFIXES = ("ray_vllm_", "ray_vllm:")
ROUTER_MARKERS = (
    "vllm:current_qps",
    "vllm:healthy_pods_total",
    "vllm:routing_decisions_total",
    "vllm:num_incoming_requests_total",
    "router_cpu_usage_percent",
)
"""Families only the production-stack router (``vllm_router``) serves; older routers have only the ``server`` label."""
_BACKEND = re.compile(r'[{,]server="([^"\\\n]{1,200})"')
SHOWN_BACKENDS = 3


def table(prefix: str, model_label: str = MODEL_LABEL, *, zero_when_absent: bool = False) -> Table:
    """vLLM's families under ``prefix``, per value of ``model_label``."""
    return Table(
        prefix=prefix,
        model_label=model_label,
        counters={field: tuple((family,) for family in families) for field, families in COUNTERS.items()},
        gauges=GAUGES,
        ratios={"kv_cache_usage_ratio": KV_CACHE},
        per_gpu_counters=PER_GPU,
        histograms=HISTOGRAMS,
        zero_when_absent=zero_when_absent,
    )


def router_refusal(text: str) -> Refusal:
    """The refusal of a production-stack router body, naming the backends it routes to."""
    backends = list(dict.fromkeys(m for m in _BACKEND.findall(text) if m.isprintable()))
    shown = ", ".join(f"{url.rstrip('/')}/metrics" for url in backends[:SHOWN_BACKENDS])
    more = f" and {len(backends) - SHOWN_BACKENDS} more" if len(backends) > SHOWN_BACKENDS else ""
    where = f" (this router sends to {shown}{more})" if shown else ""
    return Refusal(
        "this is the vLLM production-stack router, not an engine: point the exporter at each vLLM "
        f"engine's own /metrics instead{where}"
    )


def detect(text: str) -> Verdict:
    """A vLLM engine (or Ray's re-export of one) shows its counters; a production-stack router is refused."""
    if mentions(text, *(PREFIX + family for family in ENGINE_COUNTERS)):
        return True
    if mentions(text, PREFIX) and (mentions(text, *ROUTER_MARKERS) or _BACKEND.search(text) is not None):
        return router_refusal(text)
    return mentions(text, *RAY_PREFIXES)


TABLE = table(PREFIX)
RAY_TABLES = tuple(table(prefix, zero_when_absent=True) for prefix in RAY_PREFIXES)

ADAPTER = table_adapter(
    kind="vllm",
    description="vLLM 0.6 and newer (V1 engine names and the older ones), also under Ray Serve and Dynamo",
    table=TABLE,
    spellings=RAY_TABLES,
    detect=detect,
    counting=TokenCounting.INCREMENTAL,
    example="vllm:generation_tokens_total",
)
