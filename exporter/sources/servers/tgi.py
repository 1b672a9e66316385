"""Hugging Face Text Generation Inference (TGI) router's ``/metrics`` (2.x and 3.x).

Sample of what it reads (no model label; counters lack ``_total``)::

    tgi_request_success 109
    tgi_request_failure{err="validation"} 2
    tgi_queue_size 0
    tgi_batch_current_size 0
    tgi_request_generated_tokens_sum 3423
    tgi_request_input_length_sum 662

TGI has no token counters. The router observes each request's prompt length and generated tokens
into histograms when the request *finishes*, so their ``_sum`` is the token counter: it moves at
completion, and a rate over a window shorter than a few request durations is lumpy. Finished
requests are successes plus failures (``tgi_request_count`` counts requests on arrival, so it is
only the fallback). The mean-time-per-token histogram holds one observation per request (its mean,
prefill included), not one per token. TGI has no time-to-first-token histogram and no KV cache gauge.

The body names no model: the ``model:`` of the server's config names it, else ``GET /info``
(``model_id``, and ``version`` for ``inference_server_info``), read on every poll right after
``/metrics`` at the path next to it (``http://host:port/info`` for ``http://host:port/metrics``; a
proxy prefix is kept). When ``/info`` fails the poll still succeeds, with the model unnamed (``""``)
for that poll; set ``model:`` to pin the name.
"""

from __future__ import annotations

from exporter.model import ServerSample, TokenCounting
from exporter.sources.servers._base import ExtraEndpoint
from exporter.sources.servers._extras import (
    MAX_MODEL_LENGTH,
    MAX_VERSION_LENGTH,
    json_object,
    text_field,
    with_model_name,
    with_version,
)
from exporter.sources.servers._families import Table, table_adapter

PREFIX = "tgi_"
TABLE = Table(
    prefix=PREFIX,
    model_label="",
    counters={
        "prompt_tokens": (("request_input_length_sum",),),
        "generation_tokens": (("request_generated_tokens_sum",),),
        "requests_finished": (("request_success", "request_failure"), ("request_count",)),
    },
    gauges={"requests_running": ("batch_current_size",), "requests_waiting": ("queue_size",)},
    histograms={
        "inter_token_latency": ("request_mean_time_per_token_duration",),
        "e2e_request_latency": ("request_duration",),
        "request_queue_time": ("request_queue_duration",),
    },
)


def merge_info(sample: ServerSample, body: str) -> ServerSample:
    """Name the model from ``GET /info``'s ``model_id`` and take its ``version``."""
    info = json_object(body, "GET /info")
    sample = with_version(sample, text_field(info, "version", MAX_VERSION_LENGTH))
    return with_model_name(sample, text_field(info, "model_id", MAX_MODEL_LENGTH))


ADAPTER = table_adapter(
    kind="tgi",
    description="Hugging Face Text Generation Inference 2.x and 3.x (model name from GET /info)",
    table=TABLE,
    counting=TokenCounting.AT_COMPLETION,
    example="tgi_request_generated_tokens",
    extras=(ExtraEndpoint("info", merge_info),),
)
