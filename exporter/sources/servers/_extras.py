"""Helpers for the JSON side endpoints some adapters read beside ``/metrics`` (TGI ``/info``, NIM ``/v1/version``).

What they return is untrusted like any body: anything but a JSON object is a ``ParseError`` (the
reader then keeps the sample as it was), and the strings taken from it are cut to a sane length.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from exporter.model import ServerSample
from exporter.sources.servers._base import ParseError

MAX_VERSION_LENGTH = 64
MAX_MODEL_LENGTH = 256


def json_value(body: str, what: str) -> Any:
    """Parse ``body`` as JSON; raise ``ParseError`` naming ``what`` otherwise."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise ParseError(f"{what} did not answer with JSON") from None


def json_object(body: str, what: str) -> dict[str, Any]:
    """Parse ``body`` as a JSON object; raise ``ParseError`` naming ``what`` otherwise."""
    value = json_value(body, what)
    if not isinstance(value, dict):
        raise ParseError(f"{what} did not answer with a JSON object")
    return value


def text_field(data: dict[str, Any], key: str, limit: int) -> str | None:
    """A non-empty string field, cut to ``limit`` characters; ``None`` when absent or not a string."""
    value = data.get(key)
    return value[:limit] if isinstance(value, str) and value.strip() else None


def with_version(sample: ServerSample, version: str | None) -> ServerSample:
    """The sample with its server version set, when one is known."""
    return dataclasses.replace(sample, version=version) if version else sample


def with_model_name(sample: ServerSample, model: str | None) -> ServerSample:
    """Name the only model of a server whose body names none (its model is ``""``)."""
    if model is None or set(sample.models) != {""}:
        return sample
    return dataclasses.replace(sample, models={model: sample.models[""]})
