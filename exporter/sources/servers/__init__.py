"""Inference-server adapters: one module per server, each registering itself on import.

Adding a server means adding one module here that calls ``register(Adapter(...))``, plus its
fixtures and tests. Nothing else lists the servers: this package imports every module in it.

``detect`` asks the adapters in their declared order for a verdict on a body (see ``_base``): the
first that claims it reads it, and the first that refuses it ends the search with its reason.
"""

from __future__ import annotations

import importlib
import pkgutil

from exporter.sources.servers._base import (
    Adapter,
    ExtraEndpoint,
    ParseError,
    Refusal,
    RefusedBody,
    UnrecognizedBody,
    Verdict,
    register,
    registry,
)
from exporter.sources.servers._text import Body, is_json

UNRECOGNIZED = "no adapter recognizes this body (is it an inference server's /metrics?)"
NOT_TEXT = (
    "no adapter recognizes this body: it is JSON, not the Prometheus text format "
    "(point the exporter at the server's Prometheus metrics endpoint)"
)

__all__ = [
    "Adapter",
    "ExtraEndpoint",
    "ParseError",
    "Refusal",
    "RefusedBody",
    "UnrecognizedBody",
    "Verdict",
    "adapter_kinds",
    "detect",
    "get_adapter",
    "register",
]


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def adapter_kinds() -> tuple[str, ...]:
    """The ``kind`` of every adapter, in detection order."""
    return tuple(adapter.kind for adapter in registry())


def get_adapter(kind: str) -> Adapter:
    """The adapter for a ``kind``; raise ``KeyError`` for an unknown one."""
    for adapter in registry():
        if adapter.kind == kind:
            return adapter
    raise KeyError(kind)


def detect(text: str) -> Adapter:
    """The first adapter, in detection order, that claims the body.

    Raise ``RefusedBody`` with its reason when an adapter refuses the body before any claims it, and
    ``UnrecognizedBody`` when none claims it.
    """
    body = Body(text)  # the leading words of its lines, found once for every adapter's ``mentions``
    for adapter in registry():
        verdict = adapter.detect(body)
        if isinstance(verdict, Refusal):
            raise RefusedBody(verdict.reason)
        if verdict:
            return adapter
    raise UnrecognizedBody(NOT_TEXT if is_json(text) else UNRECOGNIZED)


_load_all()
