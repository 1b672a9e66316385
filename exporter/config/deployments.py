"""The rules of ``deployment:`` and ``role:``: what a deployment must hold to be counted once.

A deployment groups the servers that serve one model together: replicas, prefill and decode pools,
a frontend in front of them, and ``worker`` entries (GPUs of the deployment on a node that has no
``/metrics`` of its own). Each rule yields ``(path, problem)`` for ``exporter.config.checks``; a
deployment whose servers are on several nodes (``deployments.NAME.spans_nodes``) is only checked
entry by entry, since this node sees just its part.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from exporter.config.model import GPU_ROLES, Config, ServerConfig

Problem = tuple[str, str]


class Entry(Protocol):
    """One entry of ``servers`` as read (``checks.Entry``)."""

    @property
    def path(self) -> str: ...
    @property
    def server(self) -> ServerConfig: ...


def problems(config: Config, entries: Sequence[Entry]) -> Iterator[Problem]:
    """Every problem of the deployment settings, entry by entry and then deployment by deployment."""
    for entry in entries:
        yield from _entry(entry.path, entry.server)
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.server.deployment is not None:
            groups.setdefault(entry.server.deployment, []).append(entry)
    for name, members in groups.items():
        settings = config.deployments.get(name)
        if settings is None or not settings.spans_nodes:
            yield from _whole(name, members)
    for name in config.deployments:
        if name not in groups:
            yield f"deployments.{name}", "no server belongs to this deployment (check the servers' deployment:)"


def _entry(path: str, server: ServerConfig) -> Iterator[Problem]:
    if server.deployment is None and server.role != "engine":
        yield f"{path}.role", f"{server.role} only means something within a deployment: add deployment: NAME"
    if server.role == "worker":
        yield from _worker(path, server)


def _worker(path: str, server: ServerConfig) -> Iterator[Problem]:
    if server.url:
        yield f"{path}.url", "a worker has no /metrics of its own (its head node's server has): remove url"
    if not server.gpus and not server.gpus_auto:
        yield f"{path}.gpus", "a worker is GPUs of its deployment: list them, or gpus: auto with pod:"
    if server.gpus_auto and server.pod is None:
        yield f"{path}.gpus", "auto needs pod: for a worker (without a url there are no processes to find)"
    for key, set_ in (
        ("kind", server.kind != "auto"),
        ("model", server.model is not None),
        ("bearer_token_file", server.bearer_token_file is not None),
        ("headers", bool(server.headers)),
        ("tls", server.tls is not None),
    ):
        if set_:
            yield f"{path}.{key}", "does not apply to a worker (it has no /metrics to poll)"


def _whole(name: str, members: list[Entry]) -> Iterator[Problem]:
    roles = {entry.server.role for entry in members}
    where = f"{members[0].path}.deployment"
    hint = f"if its other servers are on other nodes, set deployments.{name}.spans_nodes: true"
    if "frontend" in roles and not roles & set(GPU_ROLES):
        yield (
            where,
            f"deployment {name!r} has a frontend but no engines: add them (role engine, prefill, decode), or {hint}",
        )
    if "prefill" in roles and "decode" not in roles:
        yield (
            where,
            f"deployment {name!r} has prefill servers but no decode server, so nothing finishes requests; {hint}",
        )
    if roles == {"worker"}:
        yield where, f"deployment {name!r} has only workers (GPUs without /metrics); {hint}"
