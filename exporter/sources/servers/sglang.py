"""SGLang's ``/metrics`` (0.4 and 0.5 names; ``--enable-metrics``).

Sample of what it reads (0.5: scheduler families carry rank labels, tokenizer families do not)::

    sglang:num_running_reqs{engine_type="unified",model_name="Qwen/Qwen3-8B",pp_rank="0",tp_rank="0"} 3.0
    sglang:token_usage{engine_type="unified",model_name="Qwen/Qwen3-8B",pp_rank="0",tp_rank="0"} 0.27
    sglang:generation_tokens_total{engine_type="unified",is_streaming="true",model_name="Qwen/Qwen3-8B"} 20480.0

Token and request counters come from the tokenizer process, which counts a request when it
*finishes*: a rate over a window shorter than a few request durations is lumpy. (The scheduler's
``sglang:realtime_tokens_total`` moves live, but per rank, only every log interval, and without the
first token of each request, so it is not used.) Finished requests come from
``sglang:num_requests_total``; bodies without it (0.4) count observations of the end-to-end latency
histogram, which SGLang records once per finished request.

Ranks: each scheduler reports under its own ``tp_rank``/``pp_rank``/``moe_ep_rank`` (and
``dp_rank`` with data parallelism). By default only the first rank of each data-parallel group
reports; with ``--enable-metrics-for-all-schedulers`` the ranks of one group report the same
requests. So per model and ``dp_rank`` only the lowest rank's series are kept, and data-parallel
groups are summed. ``sglang:token_usage`` (used KV tokens over the pool) is the KV cache ratio.
Renamed: ``time_per_output_token_seconds`` → ``inter_token_latency_seconds`` (0.5).

The same families reach us from other stacks: a **Dynamo worker** (``python -m dynamo.sglang``)
serves them unchanged beside its ``dynamo_component_*`` families (ignored), and **Ray Serve LLM**
re-exports them as ``ray_sglang_*`` (the colon replaced) with Ray's ``WorkerId`` and similar labels,
summed away per model (the tokenizer's and the scheduler's families come from different Ray workers).
Ray exports a counter only once it has moved, so a model Ray shows without one has counted 0.

Economics: ``cached_tokens_total`` (every ``cache_source``) are the prompt tokens served from cache;
``num_retracted_input_tokens_total`` / ``..._output_tokens_total`` are the tokens of requests retracted
to free KV cache, which are prefilled again when they resume (an upper bound: the radix cache may
still hold part of them). ``forward_execution_seconds_total{category}`` (older: ``gpu_execution_seconds_total``,
categories prefixed ``forward_``; with ``SGLANG_ENABLE_METRICS_DEVICE_TIMER=1``) is GPU time measured
with device timers per forward pass of the whole batch, so it never counts two requests of one batch
twice: prefill is ``extend`` (with ``mixed`` chunked-prefill batches and ``split_prefill``), decode is
``decode`` with the speculative ``target_verify`` and ``draft_extend`` passes; ``idle`` is neither.
``estimated_flops_per_gpu_total`` (``--enable-mfu-metrics``) is averaged over data-parallel groups.
"""

from __future__ import annotations

from exporter.model import TokenCounting
from exporter.sources.servers._families import Alternatives, Table, Where, table_adapter
from exporter.sources.servers._text import Labels, Series

PREFIX = "sglang:"
RAY_PREFIX = "ray_sglang_"
REPLICA_RANKS = ("tp_rank", "pp_rank", "moe_ep_rank")
"""Rank labels whose series within one data-parallel group report the same requests."""

RankKey = tuple[tuple[int, str], ...]


def _rank(labels: Labels) -> RankKey:
    values = (labels.get(name, "") for name in REPLICA_RANKS)
    return tuple((int(v), "") if v.isdigit() and len(v) < 10 else (1 << 31, v) for v in values)


def _group(labels: Labels) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in labels.items() if k not in REPLICA_RANKS)


def primary_ranks(series: Series) -> Series:
    """Keep, in each group of otherwise equal labels, only the series of the lowest rank."""
    lowest: dict[frozenset[tuple[str, str]], RankKey] = {}
    for labels, _value in series:
        group, rank = _group(labels), _rank(labels)
        lowest[group] = min(lowest.get(group, rank), rank)
    return [(labels, value) for labels, value in series if lowest[_group(labels)] == _rank(labels)]


PREFILL_CATEGORIES = ("extend", "mixed", "split_prefill", "prefill")
"""Forward modes whose GPU time is prefill work (``mixed``: chunked prefill batched with decode)."""
DECODE_CATEGORIES = ("decode", "target_verify", "draft_extend", "draft_extend_v2")
"""Forward modes whose GPU time is decode work, speculative decoding's verify and draft passes included."""
GPU_TIME_FAMILIES = ("forward_execution_seconds_total", "gpu_execution_seconds_total")
"""Newest first; the older name's categories carry a ``forward_`` prefix."""


def gpu_time(categories: tuple[str, ...]) -> Alternatives:
    """The GPU-time counter alternatives for the given forward modes, under either name and spelling."""
    values = frozenset((*categories, *(f"forward_{c}" for c in categories)))
    return tuple((Where(family, "category", values),) for family in GPU_TIME_FAMILIES)


def table(prefix: str, *, zero_when_absent: bool = False) -> Table:
    """SGLang's families under ``prefix``."""
    return Table(
        prefix=prefix,
        model_label="model_name",
        counters={
            "prompt_tokens": (("prompt_tokens_total",),),
            "generation_tokens": (("generation_tokens_total",),),
            "requests_finished": (("num_requests_total",), ("e2e_request_latency_seconds_count",)),
            "prompt_cached_tokens": (("cached_tokens_total",),),
            "recomputed_prompt_tokens": (("num_retracted_input_tokens_total",),),
            "recomputed_generation_tokens": (("num_retracted_output_tokens_total",),),
            "prefill_gpu_seconds": gpu_time(PREFILL_CATEGORIES),
            "decode_gpu_seconds": gpu_time(DECODE_CATEGORIES),
        },
        gauges={"requests_running": ("num_running_reqs",), "requests_waiting": ("num_queue_reqs",)},
        ratios={"kv_cache_usage_ratio": ("token_usage",)},
        per_gpu_counters={"flops_per_gpu": ("estimated_flops_per_gpu_total",)},
        histograms={
            "time_to_first_token": ("time_to_first_token_seconds",),
            "inter_token_latency": ("inter_token_latency_seconds", "time_per_output_token_seconds"),
            "e2e_request_latency": ("e2e_request_latency_seconds",),
            "request_queue_time": ("queue_time_seconds",),
        },
        select=primary_ranks,
        zero_when_absent=zero_when_absent,
    )


TABLE = table(PREFIX)


ADAPTER = table_adapter(
    kind="sglang",
    description="SGLang 0.4 and 0.5 (ranks summed per model), also under Ray Serve and Dynamo",
    table=TABLE,
    spellings=(table(RAY_PREFIX, zero_when_absent=True),),
    counting=TokenCounting.AT_COMPLETION,
    example="sglang:generation_tokens_total",
)
