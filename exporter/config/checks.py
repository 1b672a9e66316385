"""Every rule that relates one setting to another, in one place.

Each check yields ``(path, problem)``; ``exporter.config.load`` adds them to the problems it found
while reading, so a user sees every mistake at once. Server entries come with their path in the file
(``servers[3]``), incomplete ones (no valid name or URL) included, so their other mistakes show too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from exporter.config import deployments
from exporter.config.kubernetes import EXTRA_HINT, grpc_installed
from exporter.config.model import Config, ServerConfig

Problem = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of ``servers`` as read, with its path."""

    path: str
    server: ServerConfig
    complete: bool
    """Whether it has a valid name and URL (and so is in the configuration)."""


def problems(config: Config, entries: Sequence[Entry]) -> list[Problem]:
    """Every cross-field problem of ``config``, whose server entries are ``entries``."""
    return [
        *_intervals(config),
        *_kubernetes(config),
        *_servers(config, entries),
        *deployments.problems(config, entries),
    ]


def _intervals(config: Config) -> Iterator[Problem]:
    gpu = config.gpu
    if config.rate_window < 2 * config.poll_interval:
        yield "rate_window", "must be at least twice poll_interval, or no rate has two points"
    if config.rate_window < 2 * gpu.fast_interval:
        yield "rate_window", "must be at least twice gpu.fast_interval, or no energy rate has two points"
    if gpu.slow_interval < gpu.fast_interval:
        yield "gpu.slow_interval", "must not be shorter than gpu.fast_interval"


def _kubernetes(config: Config) -> Iterator[Problem]:
    if config.kubernetes.enabled and not grpc_installed():
        yield "kubernetes.enabled", f"needs the kubernetes extra, which is not installed: {EXTRA_HINT}"


def _servers(config: Config, entries: Sequence[Entry]) -> Iterator[Problem]:
    seen: set[str] = set()
    for entry in entries:
        path, server = entry.path, entry.server
        if entry.complete and server.name in seen:
            yield f"{path}.name", f"{server.name!r} is used by an earlier server"
        if entry.complete:
            seen.add(server.name)
        if server.timeout >= config.poll_interval:
            yield f"{path}.timeout", "must be shorter than poll_interval"
        yield from _pod(config, path, server)
        yield from _access(path, server)


def _pod(config: Config, path: str, server: ServerConfig) -> Iterator[Problem]:
    if server.pod is not None and not server.gpus_auto:
        yield f"{path}.pod", "only applies with gpus: auto"
    if server.pod is not None and not config.kubernetes.enabled:
        yield f"{path}.pod", "needs kubernetes.enabled: true"


def _access(path: str, server: ServerConfig) -> Iterator[Problem]:
    names = {name.lower() for name, _ in server.headers}
    if server.bearer_token_file is not None and "authorization" in names:
        yield f"{path}.headers", "sets Authorization, and so does bearer_token_file: keep one"
    if server.tls is not None and urlsplit(server.url).scheme != "https":
        yield f"{path}.tls", "needs an https:// url"
