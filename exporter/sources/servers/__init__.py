"""Inference-server adapters: one module per server, each registering itself on import.

Adding a server means adding one module here that calls ``register(Adapter(...))``, plus its
fixtures and tests. Nothing else lists the servers: this package imports every module in it.
"""

from __future__ import annotations

import importlib
import pkgutil

from exporter.sources.servers._base import Adapter, ExtraEndpoint, ParseError, UnrecognizedBody, register, registry

__all__ = [
    "Adapter",
    "ExtraEndpoint",
    "ParseError",
    "UnrecognizedBody",
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
    """The first adapter, by priority, that recognizes the body; raise ``UnrecognizedBody`` otherwise."""
    for adapter in registry():
        if adapter.detect(text):
            return adapter
    raise UnrecognizedBody("no adapter recognizes this body (is it an inference server's /metrics?)")


_load_all()
