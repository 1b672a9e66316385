"""TensorRT-LLM's own server, ``trtllm-serve``: its ``/prometheus/metrics``, and Dynamo's TensorRT-LLM workers.

Sample of what it reads (labels ``model_name`` and ``engine_type``; gauges carry a ``pid``)::

    trtllm_request_success_total{engine_type="trtllm",finished_reason="length",model_name="Qwen3-8B"} 3.0
    trtllm_generation_tokens_total{engine_type="trtllm",model_name="Qwen3-8B"} 865.0
    trtllm_num_requests_running{engine_type="trtllm",model_name="Qwen3-8B",pid="4127"} 1.0
    trtllm_kv_cache_utilization{engine_type="trtllm",model_name="Qwen3-8B",pid="4127"} 0.0001086

``trtllm-serve`` serves Prometheus text at ``/prometheus/metrics`` (with ``return_perf_metrics:
true``; the iteration gauges also need ``enable_iter_perf_stats: true`` on the PyTorch backend). Its
``/metrics`` is a JSON list of iteration stats: such a body is refused with that path as the fix, as
``kind: auto`` and as ``kind: trtllm``. Every per-request family, the token counters included, is
logged once, when the request *finishes* (at completion: a long request shows as nothing, then a
burst). ``trtllm_prompt_cached_tokens_total`` is created at 0 when the server starts and the other
counters on their first request, so where the body has it, a counter it lacks has counted 0.

The iteration gauges (running, waiting, KV cache) are set only when a finished request wakes the
stats loop: after the last request they keep the last iteration's values (often one running
request on an idle server). ``time_per_output_token_seconds`` holds one observation per request
(that request's mean), not one per token. Every gauge is rendered once per process (``pid``): the
largest is kept.

Names by version: ``trtllm_`` (TensorRT-LLM 1.3 on, and Dynamo's workers since November 2025);
``trtllm:`` (Dynamo's workers of October and November 2025); before the prefix, the five request
families without one (``request_success_total``, ``e2e_request_latency_seconds``, ...) labelled
``engine_type`` and ``model_name="undefined"`` (set the config's ``model:`` to name it). Those
unprefixed names are also NIM's and MindIE's, so that form is recognized by its ``engine_type`` label.
A Dynamo worker's ``dynamo_component_*`` families and ``*_created`` gauges are ignored.
"""

from __future__ import annotations

import re

from exporter.model import ServerSample, TokenCounting
from exporter.sources.servers._base import Adapter, ParseError, Refusal, Verdict, register
from exporter.sources.servers._families import Spellings, Table, read, to_sample, with_zero_counters
from exporter.sources.servers._text import is_json, mentions, scan

PREFIXES = ("trtllm_", "trtllm:", "")
"""Newest first; ``""``: the names before TensorRT-LLM prefixed them."""
CACHED_TOKENS = "prompt_cached_tokens_total"
"""Created at 0 at start-up by the versions that have token counters."""
UNPREFIXED = ("request_success_total", "e2e_request_latency_seconds", "time_to_first_token_seconds")
ENGINE_LABEL = 'engine_type="'
JSON_REASON = (
    "the body is JSON, as TensorRT-LLM trtllm-serve's /metrics (iteration stats) answers: point the "
    "exporter at /prometheus/metrics on the same port (served with return_perf_metrics: true)"
)
_EMPTY_LIST = re.compile(r"\s*\[\s*\]\s*")
_ITERATION_KEYS = ('"iterLatencyMS"', '"numActiveRequests"', '"kvCacheStats"')


def table(prefix: str) -> Table:
    """TensorRT-LLM's families under ``prefix``."""
    return Table(
        prefix=prefix,
        model_label="model_name",
        counters={
            "prompt_tokens": (("prompt_tokens_total",),),
            "generation_tokens": (("generation_tokens_total",),),
            "requests_finished": (("request_success_total",),),
            "prompt_cached_tokens": ((CACHED_TOKENS,),),
        },
        gauges={"requests_running": ("num_requests_running",), "requests_waiting": ("num_requests_waiting",)},
        ratios={"kv_cache_usage_ratio": ("kv_cache_utilization",)},
        histograms={
            "time_to_first_token": ("time_to_first_token_seconds",),
            "inter_token_latency": ("time_per_output_token_seconds",),
            "e2e_request_latency": ("e2e_request_latency_seconds",),
            "request_queue_time": ("request_queue_time_seconds",),
        },
    )


SPELLINGS = Spellings(*(table(prefix) for prefix in PREFIXES))
NAMES = SPELLINGS.names | {prefix + CACHED_TOKENS for prefix in PREFIXES}


def parse(text: str) -> ServerSample:
    """Parse a ``trtllm-serve`` ``/prometheus/metrics`` or Dynamo TensorRT-LLM worker body."""
    if is_json(text):
        raise ParseError(JSON_REASON)
    found = scan(text, NAMES)
    chosen = SPELLINGS.pick(found)
    readings = read(found, chosen)
    cached = found.get(chosen.prefix + CACHED_TOKENS)
    if cached is not None:
        started = {labels.get(chosen.model_label, "") for labels, _ in cached}
        readings = with_zero_counters(readings, chosen.counters, also=started)
    return to_sample(
        found, readings, kind="trtllm", counting=TokenCounting.AT_COMPLETION, example="trtllm_request_success_total"
    )


def is_iteration_stats(text: str) -> bool:
    """Whether a JSON body is ``trtllm-serve``'s ``/metrics``: a list of iteration stats, empty between iterations."""
    return _EMPTY_LIST.fullmatch(text) is not None or any(key in text for key in _ITERATION_KEYS)


def detect(text: str) -> Verdict:
    """Families prefixed ``trtllm_`` or ``trtllm:``, or the unprefixed ones with an ``engine_type`` label.

    The JSON iteration stats of ``trtllm-serve``'s ``/metrics`` are refused with the path to use.
    """
    if is_json(text):
        return Refusal(JSON_REASON) if is_iteration_stats(text) else False
    if mentions(text, "trtllm_", "trtllm:"):
        return True
    return mentions(text, *UNPREFIXED) and ENGINE_LABEL in text


ADAPTER = register(
    Adapter(
        kind="trtllm",
        description="TensorRT-LLM trtllm-serve (/prometheus/metrics), and Dynamo's TensorRT-LLM workers",
        parse=parse,
        detect=detect,
    )
)
