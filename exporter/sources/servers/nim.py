"""NVIDIA NIM for LLMs' ``/v1/metrics``: vLLM's families without the ``vllm:`` prefix.

Sample of what it reads::

    num_requests_running{model_name="meta/llama-3.1-8b-instruct"} 1.0
    gpu_cache_usage_perc{model_name="meta/llama-3.1-8b-instruct"} 0.0002848191398461977
    generation_tokens_total{model_name="meta/llama-3.1-8b-instruct"} 174.0
    request_finish_total{finished_reason="length",model_name="meta/llama-3.1-8b-instruct"} 5.0

Everything but finished requests is read with the vLLM adapter's ``table`` without a prefix; token
counters move every iteration (incremental). NIM's ``request_success_total`` counts only requests
that finished with ``stop`` or ``length``, so finished requests come from ``request_finish_total``
(every finish reason), else from success plus ``request_failure_total`` (one scan reads both).
The version comes from the ``version`` endpoint next to the metrics path (``/v1/version`` beside
``/v1/metrics``; its ``release``), read on every poll right after the metrics.

Detection comes after every prefixed server (a fallback adapter): unprefixed names such as
``num_requests_running`` are generic enough that a body with ``vllm:``, ``sglang:`` or ``tgi_``
families must be claimed by those adapters first. A NIM body shows vLLM's token or finish counters.
Huawei MindIE serves the same unprefixed names for Ascend NPUs; its own families
(``request_received_total``, ``npu_cache_usage_perc``, ...) give it away, and it is refused rather
than read as NIM (whose ``/v1/version`` it does not have).
"""

from __future__ import annotations

import dataclasses

from exporter.model import ServerSample, TokenCounting
from exporter.sources.servers import vllm
from exporter.sources.servers._base import Adapter, ExtraEndpoint, Refusal, Verdict, register
from exporter.sources.servers._extras import MAX_VERSION_LENGTH, json_object, text_field, with_version
from exporter.sources.servers._families import Alternatives, counter, family_name, read, to_sample
from exporter.sources.servers._text import mentions, scan

TABLE = vllm.table("")
FINISHED: Alternatives = (("request_finish_total",), ("request_success_total", "request_failure_total"))
NAMES = TABLE.names() | {family_name(name) for names in FINISHED for name in names}
MARKERS = ("num_requests_running", "generation_tokens_total", "gpu_cache_usage_perc", "num_request_max")
COUNTERS = ("generation_tokens_total", "prompt_tokens_total", "request_finish_total")
MINDIE_MARKERS = (
    "request_received_total",
    "request_failed_total",
    "failed_request_perc",
    "npu_cache_usage_perc",
    "npu_prefix_cache_hit_rate",
)
"""Families of Huawei MindIE (MindIE Server and the MindIE-Motor coordinator) that NIM does not have."""
MINDIE = Refusal(
    "this is Huawei MindIE's /metrics (an inference server for Ascend NPUs), which the exporter does "
    "not read: it reads servers on NVIDIA GPUs, so remove this server from the configuration"
)


def parse(text: str) -> ServerSample:
    """Parse a NIM for LLMs ``/v1/metrics`` body."""
    found = scan(text, NAMES)
    counting = TokenCounting.INCREMENTAL
    sample = to_sample(found, read(found, TABLE), kind="nim", counting=counting, example="generation_tokens_total")
    finished = counter(found, "", FINISHED, vllm.MODEL_LABEL)
    models = {
        model: dataclasses.replace(values, requests_finished=finished[model]) if model in finished else values
        for model, values in sample.models.items()
    }
    return dataclasses.replace(sample, models=models)


def detect(text: str) -> Verdict:
    """A NIM body has vLLM's unprefixed family names, counters among them; a MindIE body is refused."""
    if not mentions(text, *MARKERS):
        return False
    if mentions(text, *MINDIE_MARKERS):
        return MINDIE
    return mentions(text, *COUNTERS)


def merge_version(sample: ServerSample, body: str) -> ServerSample:
    """Take the server's release from ``GET /v1/version``."""
    return with_version(sample, text_field(json_object(body, "GET /v1/version"), "release", MAX_VERSION_LENGTH))


ADAPTER = register(
    Adapter(
        kind="nim",
        description="NVIDIA NIM for LLMs 1.x (vLLM families without a prefix; version from GET /v1/version)",
        parse=parse,
        detect=detect,
        fallback=True,
        extras=(ExtraEndpoint("version", merge_version),),
    )
)
