"""llama.cpp's ``llama-server --metrics`` (``llamacpp:`` families), made live by ``/slots``.

Sample of what it reads (no labels; values print with 6 significant digits, so ``1.23457e+06``)::

    llamacpp:prompt_tokens_total 194
    llamacpp:tokens_predicted_total 640
    llamacpp:requests_processing 0
    llamacpp:requests_deferred 0

``tokens_predicted_total`` moves only when a request finishes, so two more endpoints are read, together,
once ``/metrics`` has answered (as paths relative to the metrics URL, so a proxy prefix is kept):

- ``/slots``: each busy slot's ``n_decoded`` (tokens generated so far by its unfinished request)
  becomes ``generation_tokens_in_flight``, from which ``derive`` makes a live rate. Read right after
  ``/metrics`` so that little can finish in between (``derive.observe_model`` copes with what does).
- ``/v1/models``: names the model (the body has no model label) when the server serves exactly one.
  The config's ``model:`` wins over it.

The body has no counter of finished requests, so requests/s and cost per request are absent. Never
read ``prompt_tokens_seconds`` or ``predicted_tokens_seconds``: each read of ``/metrics`` resets the
window behind them. Older servers also have ``kv_cache_usage_ratio``, read where present.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from exporter.model import ModelSample, ServerSample, TokenCounting
from exporter.sources.servers._base import Adapter, ExtraEndpoint, ParseError, register
from exporter.sources.servers._extras import MAX_MODEL_LENGTH, json_object, json_value, text_field, with_model_name
from exporter.sources.servers._families import check_fields
from exporter.sources.servers._text import Series, mentions, scan

PREFIX = "llamacpp:"
FIELDS = {
    "prompt_tokens": "prompt_tokens_total",
    "generation_tokens": "tokens_predicted_total",
    "requests_running": "requests_processing",
    "requests_waiting": "requests_deferred",
    "kv_cache_usage_ratio": "kv_cache_usage_ratio",
}
"""Normalized field → family name (after the prefix)."""
check_fields(FIELDS)


def _value(found: dict[str, Series], family: str) -> float | None:
    series = found.get(PREFIX + family)
    if not series:
        return None
    value = series[0][1]
    return value if math.isfinite(value) and value >= 0 else None


def parse(text: str) -> ServerSample:
    """Parse a llama.cpp ``/metrics`` body into one model named ``""`` (named later, see module doc)."""
    found = scan(text, frozenset(PREFIX + family for family in FIELDS.values()))
    values = {field: _value(found, family) for field, family in FIELDS.items()}
    if not found:
        raise ParseError(f"no llama.cpp metrics found (expected families such as {PREFIX}tokens_predicted_total)")
    kv = values["kv_cache_usage_ratio"]
    values["kv_cache_usage_ratio"] = min(kv, 1.0) if kv is not None else None
    model = ModelSample(**values, histograms={})
    return ServerSample(kind="llamacpp", models={"": model}, token_counting=TokenCounting.AT_COMPLETION)


def detect(text: str) -> bool:
    """A llama.cpp body has ``llamacpp:`` families."""
    return mentions(text, PREFIX)


def _slot_list(body: str) -> list[dict[str, Any]]:
    slots = json_value(body, "GET /slots")
    if not isinstance(slots, list) or not all(isinstance(slot, dict) for slot in slots):
        raise ParseError("GET /slots did not answer with a list of slot objects")
    return slots


def _is_busy(slot: dict[str, Any]) -> bool:
    """Newer servers say ``is_processing``; older ones a ``state`` that is 0 when idle."""
    if isinstance(slot.get("is_processing"), bool):
        return bool(slot["is_processing"])
    state = slot.get("state")
    if isinstance(state, int) and not isinstance(state, bool):
        return state != 0
    raise ParseError("GET /slots: a slot has neither is_processing nor state")


def _decoded(slot: dict[str, Any]) -> float:
    """``next_token.n_decoded``; ``next_token`` is an object in some versions, a list of one in others."""
    next_token = slot.get("next_token")
    if isinstance(next_token, list) and next_token:
        next_token = next_token[0]
    decoded = next_token.get("n_decoded") if isinstance(next_token, dict) else None
    if isinstance(decoded, bool) or not isinstance(decoded, int) or decoded < 0:
        raise ParseError("GET /slots: a busy slot has no next_token.n_decoded count")
    return float(decoded)


def tokens_in_flight(body: str) -> float:
    """Tokens generated so far by the unfinished requests in a ``/slots`` body; ``ParseError`` if unreadable."""
    return sum((_decoded(slot) for slot in _slot_list(body) if _is_busy(slot)), 0.0)


def _only_model(sample: ServerSample) -> ModelSample:
    if len(sample.models) != 1:
        raise ParseError(f"expected one model, found {len(sample.models)}")
    return next(iter(sample.models.values()))


def merge_slots(sample: ServerSample, body: str) -> ServerSample:
    """Add the tokens in flight from a ``/slots`` body to the sample's one model."""
    model = dataclasses.replace(_only_model(sample), generation_tokens_in_flight=tokens_in_flight(body))
    return dataclasses.replace(sample, models=dict.fromkeys(sample.models, model))


def model_name(body: str) -> str:
    """The one model a ``/v1/models`` body lists (a ``.gguf`` path loses its folders); ``ParseError`` otherwise."""
    data = json_object(body, "GET /v1/models").get("data")
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise ParseError("GET /v1/models did not list exactly one model under data")
    name = text_field(data[0], "id", 4096)
    if name is None:
        raise ParseError("GET /v1/models listed a model without an id")
    name = name.rsplit("/", 1)[-1] if name.endswith(".gguf") else name
    return name[:MAX_MODEL_LENGTH]


def merge_model_name(sample: ServerSample, body: str) -> ServerSample:
    """Name the sample's one unnamed model after the model the server lists."""
    return with_model_name(sample, model_name(body))


ADAPTER = register(
    Adapter(
        kind="llamacpp",
        description="llama.cpp llama-server (--metrics), live generation from /slots",
        parse=parse,
        detect=detect,
        extras=(ExtraEndpoint("slots", merge_slots), ExtraEndpoint("v1/models", merge_model_name)),
    )
)
