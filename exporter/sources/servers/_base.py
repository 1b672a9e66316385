"""What every adapter is: a kind, a pure ``parse``, a cheap ``detect``, and the registry that holds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.model import ServerSample


class ParseError(ValueError):
    """The body cannot be read as this server's metrics. The message is one line, for logs and ``up 0``."""


class UnrecognizedBody(ParseError):
    """No adapter recognizes the body."""


@dataclass(frozen=True, slots=True)
class ExtraEndpoint:
    """A second endpoint an adapter reads beside ``/metrics``, such as llama.cpp's ``/slots``.

    ``path`` is resolved against the configured metrics URL. ``merge`` folds its body into the parsed
    sample; when the endpoint fails, the sample is kept as it is.
    """

    path: str
    merge: Callable[[ServerSample, str], ServerSample]


@dataclass(frozen=True, slots=True)
class Adapter:
    """One inference server's dialect of ``/metrics``."""

    kind: str
    """The config's ``kind`` value."""
    description: str
    """The server and versions covered, for ``--help`` and docs."""
    parse: Callable[[str], ServerSample]
    """Pure: body text in, normalized sample out; raises ``ParseError`` (only) on bad input."""
    detect: Callable[[str], bool]
    """Cheap: whether a body looks like this server's. Used by ``kind: auto``."""
    priority: int = 100
    """Detection order, lowest first: a server that re-exports another's families goes first."""
    extras: tuple[ExtraEndpoint, ...] = ()


_REGISTRY: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    """Add an adapter; its module calls this on import."""
    if adapter.kind in _REGISTRY and _REGISTRY[adapter.kind] is not adapter:
        raise ValueError(f"adapter kind {adapter.kind!r} registered twice")
    _REGISTRY[adapter.kind] = adapter
    return adapter


def registry() -> list[Adapter]:
    """Every adapter, in detection order."""
    return sorted(_REGISTRY.values(), key=lambda a: (a.priority, a.kind))
