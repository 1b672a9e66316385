"""NVIDIA Triton Inference Server's ``/metrics`` (port 8002): core, TensorRT-LLM backend and vLLM backend.

Sample of what it reads (every family per ``model`` and ``version``; versions are summed per model)::

    nv_inference_request_success{model="tensorrt_llm",version="1"} 96
    nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 4
    nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.31
    nv_llm_output_token_len_sum{model="tensorrt_llm",response_metric_type="total_output_tokens",version="1"} 18211
    vllm:generation_tokens_total{model="vllm_model",version="1"} 16

Core counters have no ``_total`` and core durations are cumulative microsecond counters
(``nv_inference_request_duration_us``), not histograms, so no latency histogram is made from them.
Finished requests are ``nv_inference_request_success`` plus ``..._failure``; the queue is
``nv_inference_pending_request_count``. With ``--metrics-config histogram_latencies=true`` Triton
also keeps ``nv_inference_first_response_histogram_ms``, which becomes the time to first token
(milliseconds to seconds): it times the first *response*, which is the first token only for a model
that streams.

TensorRT-LLM backend: ``nv_trt_llm_request_metrics`` gives running (``active``) and queued
(``waiting``) requests, ``nv_trt_llm_kv_cache_block_metrics`` the KV cache (``fraction``, else
``used``/``max``), and the ``_sum`` of the ``nv_llm_input_token_len`` / ``nv_llm_output_token_len``
histograms the tokens; those histograms are token counts observed when a request finishes, so this
server counts at completion. vLLM backend: the re-exported ``vllm:`` families (labelled ``model``
rather than ``model_name``) are read with the vLLM adapter's names; they count every iteration.
Triton is detected ahead of vLLM because its vLLM backend's body has ``vllm:`` families.
"""

from __future__ import annotations

from collections.abc import Mapping

from exporter.model import ServerSample, TokenCounting
from exporter.sources.servers import vllm
from exporter.sources.servers._base import Adapter, register
from exporter.sources.servers._families import Readings, Table, Values, merge, read, to_sample
from exporter.sources.servers._text import Series, mentions, scan, sum_by

MODEL_LABEL = "model"
TRT_REQUESTS = "nv_trt_llm_request_metrics"
TRT_KV = "nv_trt_llm_kv_cache_block_metrics"
SPLIT_BY = {TRT_REQUESTS: "request_type", TRT_KV: "kv_cache_block_type"}
"""TensorRT-LLM gauge families whose label says what each series is; read as ``family/label value``."""

TRT_TABLE = Table(
    prefix="",
    model_label=MODEL_LABEL,
    gauges={"requests_running": (f"{TRT_REQUESTS}/active",), "requests_waiting": (f"{TRT_REQUESTS}/waiting",)},
    ratios={"kv_cache_usage_ratio": (f"{TRT_KV}/fraction",)},
)
VLLM_TABLE = vllm.table("vllm:", MODEL_LABEL)
CORE_TABLE = Table(
    prefix="",
    model_label=MODEL_LABEL,
    counters={
        "prompt_tokens": (("nv_llm_input_token_len_sum",),),
        "generation_tokens": (("nv_llm_output_token_len_sum",),),
        "requests_finished": (("nv_inference_request_success", "nv_inference_request_failure"),),
    },
    gauges={"requests_waiting": ("nv_inference_pending_request_count",)},
    histograms={"time_to_first_token": ("nv_inference_first_response_histogram_ms",)},
    histogram_scale=0.001,
)
NAMES = frozenset(
    name for name in TRT_TABLE.names() | VLLM_TABLE.names() | CORE_TABLE.names() | set(SPLIT_BY) if "/" not in name
)
"""What to scan for: every table's families, but the split TensorRT-LLM gauges by their real name."""
PREFIXES = ("nv_inference_", "nv_trt_llm_", "nv_llm_")


def _split(found: Mapping[str, Series]) -> dict[str, Series]:
    """Add ``family/label value`` entries for the TensorRT-LLM gauge families."""
    out = dict(found)
    for family, label in SPLIT_BY.items():
        for labels, value in found.get(family, ()):
            out.setdefault(f"{family}/{labels.get(label, '')}", []).append((labels, value))
    return out


def kv_from_blocks(found: Mapping[str, Series]) -> Values:
    """KV cache usage from used over maximum blocks, per model, where both are known and the maximum is not 0."""
    used = sum_by(found.get(f"{TRT_KV}/used", ()), MODEL_LABEL)
    total = sum_by(found.get(f"{TRT_KV}/max", ()), MODEL_LABEL)
    ratios: Values = {}
    for model, blocks in total.items():
        in_use = used.get(model)
        if blocks is not None and blocks > 0 and in_use is not None:
            ratios[model] = min(in_use / blocks, 1.0)
    return ratios


def parse(text: str) -> ServerSample:
    """Parse a Triton ``/metrics`` body."""
    found = _split(scan(text, NAMES))
    trt, vllm_backend, core = (read(found, table) for table in (TRT_TABLE, VLLM_TABLE, CORE_TABLE))
    blocks = Readings({"kv_cache_usage_ratio": kv_from_blocks(found)}, {})
    readings = merge([trt, blocks, vllm_backend, core])
    counting = _counting(vllm_backend, core)
    return to_sample(found, readings, kind="triton", counting=counting, example="nv_inference_request_success")


def _counting(vllm_backend: Readings, core: Readings) -> TokenCounting:
    """Incremental only when every token counter comes from the vLLM backend."""
    if core.values.get("generation_tokens") or not vllm_backend.values.get("generation_tokens"):
        return TokenCounting.AT_COMPLETION
    return TokenCounting.INCREMENTAL


def detect(text: str) -> bool:
    """A Triton body has ``nv_inference_``, ``nv_trt_llm_`` or ``nv_llm_`` families."""
    return mentions(text, *PREFIXES)


ADAPTER = register(
    Adapter(
        kind="triton",
        description="NVIDIA Triton Inference Server (core, TensorRT-LLM and vLLM backends)",
        parse=parse,
        detect=detect,
        ahead_of=("vllm",),
    )
)
