"""NVIDIA Dynamo's HTTP frontend (``python -m dynamo.frontend``): its ``dynamo_frontend_*`` families.

Sample of what it reads (per ``model``)::

    dynamo_frontend_output_tokens_total{model="qwen/qwen3-0.6b"} 300
    dynamo_frontend_requests_total{endpoint="chat_completions",model="qwen/qwen3-0.6b",...,status="success"} 1
    dynamo_frontend_input_sequence_tokens_sum{model="qwen/qwen3-0.6b"} 33
    dynamo_frontend_inflight_requests{model="qwen/qwen3-0.6b"} 0
    dynamo_frontend_model_context_length{model="Qwen/Qwen3-0.6B"} 40960

Generated tokens come from ``output_tokens_total``, which moves as tokens stream (0.7 on; older
frontends only observe each request's output length, ``output_sequence_tokens_sum``, when it ends).
There is no prompt-token counter: prompt tokens are the sum of the input-length histogram, observed
per request. Finished requests are ``requests_total`` over every status, endpoint and request type.
Running requests are the engine-bound ``inflight_requests`` (else ``active_requests``, which also
counts requests still being pre-processed); waiting ones ``queued_requests``, which counts a request
until its first token, so it overlaps the running ones during prefill. Counters appear on a model's
first request, so a model the frontend serves without one has counted 0.

Until Dynamo 1.2 the request families label the model in lower case (``qwen/qwen3-0.6b``) while the
``model_*`` gauges keep its case: each model is named as those gauges spell it. Requests for a model
the frontend does not serve (``model="unknown_model"``) are left out.

The frontend counts the same tokens as its workers: configure the frontend and its workers as one
deployment (``role: frontend`` and the workers' roles), which counts each request once, from the
frontend (``docs/deployments.md``). A worker (``python -m dynamo.vllm``, ...)
is read by its engine's adapter (``vllm``, ``sglang``, ``trtllm``); a worker body without any
engine families is refused with what to change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from exporter.model import Histogram, ServerSample, TokenCounting
from exporter.sources.servers import sglang, trtllm, vllm
from exporter.sources.servers._base import Adapter, ParseError, Refusal, Verdict, register
from exporter.sources.servers._families import Readings, Table, Values, read, to_sample, with_zero_counters
from exporter.sources.servers._text import Series, mentions, scan

PREFIX = "dynamo_frontend_"
WORKER_PREFIX = "dynamo_component_"
ENGINE_PREFIXES = (vllm.PREFIX, sglang.PREFIX, *(prefix for prefix in trtllm.PREFIXES if prefix))
MODEL_LABEL = "model"
UNKNOWN_MODEL = "unknown_model"
LIVE_TOKENS = "output_tokens_total"
MODEL_GAUGES = ("model_context_length", "model_total_kv_blocks", "model_max_num_seqs")
"""Per-model configuration gauges: they keep the model name's case and exist before any request."""

TABLE = Table(
    prefix=PREFIX,
    model_label=MODEL_LABEL,
    counters={
        "prompt_tokens": (("input_sequence_tokens_sum",),),
        "generation_tokens": ((LIVE_TOKENS,), ("output_sequence_tokens_sum",)),
        "requests_finished": (("requests_total",),),
    },
    gauges={"requests_running": ("inflight_requests", "active_requests"), "requests_waiting": ("queued_requests",)},
    histograms={
        "time_to_first_token": ("time_to_first_token_seconds",),
        "inter_token_latency": ("inter_token_latency_seconds",),
        "e2e_request_latency": ("request_duration_seconds",),
    },
)
NAMES = TABLE.names() | {PREFIX + gauge for gauge in MODEL_GAUGES}
WORKER_WITHOUT_ENGINE = Refusal(
    "this is a Dynamo worker's /metrics without its engine's families (a TensorRT-LLM worker passes "
    "them on only with --publish-events-and-metrics, after its first request): fix that, or point the "
    "exporter at the Dynamo frontend instead"
)


def served_models(found: Mapping[str, Series]) -> list[str]:
    """The models the ``model_*`` gauges name, as they spell them."""
    names = (labels.get(MODEL_LABEL, "") for gauge in MODEL_GAUGES for labels, _ in found.get(PREFIX + gauge, ()))
    return list(dict.fromkeys(name for name in names if name))


T = TypeVar("T")


def _renamed(per_model: Mapping[str, T], spelled: Mapping[str, str]) -> dict[str, T]:
    return {spelled.get(model, model): value for model, value in per_model.items() if model != UNKNOWN_MODEL}


def with_model_case(readings: Readings, served: Iterable[str]) -> Readings:
    """Name each model as the ``model_*`` gauges spell it, and leave ``unknown_model`` out."""
    seen = readings.model_names()
    spelled = {name.lower(): name for name in served if name.lower() != name and name not in seen}
    values: dict[str, Values] = {name: _renamed(v, spelled) for name, v in readings.values.items()}
    histograms: dict[str, dict[str, Histogram]] = {
        name: _renamed(h, spelled) for name, h in readings.histograms.items()
    }
    return Readings(values, histograms)


def parse(text: str) -> ServerSample:
    """Parse a Dynamo frontend ``/metrics`` body."""
    found = scan(text, NAMES)
    served = served_models(found)
    readings = with_model_case(read(found, TABLE), served)
    readings = with_zero_counters(readings, TABLE.counters, also=served)
    if not readings.model_names() and mentions(text, WORKER_PREFIX):
        raise ParseError("this is a Dynamo worker: read it with its engine's kind (vllm, sglang, trtllm) or auto")
    live = PREFIX + LIVE_TOKENS in found or PREFIX + "output_sequence_tokens_sum" not in found
    counting = TokenCounting.INCREMENTAL if live else TokenCounting.AT_COMPLETION
    return to_sample(found, readings, kind="dynamo", counting=counting, example=PREFIX + LIVE_TOKENS)


def detect(text: str) -> Verdict:
    """A frontend body has ``dynamo_frontend_`` families; a worker body without engine families is refused."""
    if mentions(text, PREFIX):
        return True
    if mentions(text, WORKER_PREFIX) and not mentions(text, *ENGINE_PREFIXES):
        return WORKER_WITHOUT_ENGINE
    return False


ADAPTER = register(
    Adapter(
        kind="dynamo",
        description="NVIDIA Dynamo frontend (dynamo_frontend_ families; workers are read by their engine's kind)",
        parse=parse,
        detect=detect,
    )
)
