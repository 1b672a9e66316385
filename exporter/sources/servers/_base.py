"""What every adapter is: a kind, a pure ``parse``, a cheap ``detect``, and the registry that holds them.

``detect`` gives a verdict on a body: ``True`` (this server's, read it), ``False`` (not this
server's, ask the next adapter) or a ``Refusal`` (a body this adapter knows and will not read, such
as the vLLM production-stack router's, with a one-line reason that says what to point the exporter
at). A verdict reasons about what the body holds, not only its prefix: an engine shows the families
its look-alikes lack (vLLM's token counters, which the router does not have).

Detection order is declared, not numbered: an adapter names the kinds whose bodies its own bodies
also look like and must be tried ``ahead_of`` (Triton's vLLM backend re-exports ``vllm:`` families,
so Triton is tried ahead of vLLM), and a ``fallback`` adapter, whose names are generic (NIM's
unprefixed vLLM names), is tried after every other. The registry orders them once, checks that every
named kind exists and that no two adapters claim to go ahead of each other, and breaks ties by kind.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from exporter.model import ServerSample


class ParseError(ValueError):
    """The body cannot be read as this server's metrics. The message is one line, for logs and ``up 0``."""


class UnrecognizedBody(ParseError):
    """No adapter recognizes the body."""


class RefusedBody(ParseError):
    """An adapter recognized the body as one the exporter does not read; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A body an adapter knows and will not read, such as a router's or an unsupported server's."""

    reason: str
    """One line: what the body is and what to point the exporter at instead."""


Verdict = bool | Refusal
"""What ``detect`` says of a body: ``True`` (this server's), ``False`` (not this server's) or a ``Refusal``."""


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
    detect: Callable[[str], Verdict]
    """Cheap (a few substring searches): this adapter's verdict on a body. Used by ``kind: auto``; never raises."""
    ahead_of: tuple[str, ...] = ()
    """Kinds whose detection this adapter's bodies would also pass: it is asked before them."""
    fallback: bool = False
    """Detected by generic names: asked after every adapter that is not a fallback."""
    extras: tuple[ExtraEndpoint, ...] = ()


_REGISTRY: dict[str, Adapter] = {}


def register(adapter: Adapter) -> Adapter:
    """Add an adapter; its module calls this on import."""
    if adapter.kind in _REGISTRY and _REGISTRY[adapter.kind] is not adapter:
        raise ValueError(f"adapter kind {adapter.kind!r} registered twice")
    _REGISTRY[adapter.kind] = adapter
    _ordered.cache_clear()
    return adapter


def registry() -> tuple[Adapter, ...]:
    """Every adapter, in detection order."""
    return _ordered()


@cache
def _ordered() -> tuple[Adapter, ...]:
    adapters = list(_REGISTRY.values())
    for adapter in adapters:
        unknown = sorted(set(adapter.ahead_of) - set(_REGISTRY))
        if unknown:
            raise ValueError(f"adapter {adapter.kind!r} is declared ahead of unknown kinds: {', '.join(unknown)}")
    specific = [a for a in adapters if not a.fallback]
    return (*detection_order(specific), *detection_order([a for a in adapters if a.fallback]))


def detection_order(adapters: Iterable[Adapter]) -> list[Adapter]:
    """``adapters`` with each one ahead of the kinds it names (among them), ties by kind; raise on a cycle."""
    by_kind = {a.kind: a for a in adapters}
    behind: dict[str, set[str]] = {kind: set() for kind in by_kind}
    for adapter in by_kind.values():
        for other in adapter.ahead_of:
            if other in by_kind:
                behind[other].add(adapter.kind)
    ready = [kind for kind, before in behind.items() if not before]
    heapq.heapify(ready)
    order: list[Adapter] = []
    while ready:
        kind = heapq.heappop(ready)
        order.append(by_kind[kind])
        for other in set(by_kind[kind].ahead_of):
            if other in behind:
                behind[other].discard(kind)
                if not behind[other]:
                    heapq.heappush(ready, other)
    if len(order) != len(by_kind):
        stuck = sorted(set(by_kind) - {a.kind for a in order})
        raise ValueError(f"adapters declared ahead of each other in a cycle: {', '.join(stuck)}")
    return order
