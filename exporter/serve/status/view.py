"""Compose what the status page and ``/api/v1/status`` show from one snapshot and the history.

The page (``page.py``) and the JSON (``api.py``) are two renderings of the same ``StatusView``, so
they cannot disagree. Cards are kept for models and GPUs that vanished but still have history in the
window (a server that went down keeps its charts, with its figures ``n/a``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from exporter.exposition.gpu_families import gpu_key
from exporter.model import NOT_POLLED, GpuView, Snapshot, SourceStatus
from exporter.serve.status.cards import Card, Figure, make_figures, rounded
from exporter.serve.status.cost import cost_cards, cost_points, cost_summary
from exporter.serve.status.deployments import deployment_cards, deployment_points
from exporter.serve.status.figures import (
    GIB,
    GPU_SPECS,
    MODEL_SPECS,
    clocks_text,
    format_number,
    model_rows,
    throttled,
)
from exporter.serve.status.history import History, Point

__all__ = ["Card", "Figure", "Settings", "Source", "StatusView", "build", "points", "record"]
MODEL_METRICS = frozenset(spec.metric.name for spec in MODEL_SPECS)
GPU_METRICS = frozenset(spec.metric.name for spec in GPU_SPECS)


@dataclass(frozen=True, slots=True)
class Source:
    """How the last poll of one source went, in data and in words."""

    type: Literal["server", "nvml"]
    name: str
    kind: str
    up: bool
    state: Literal["up", "down", "waiting"]
    error: str | None
    last_success_unix: float | None
    poll_duration_seconds: float
    display: str


@dataclass(frozen=True, slots=True)
class Settings:
    """What the configuration says about polling (it may change on reload)."""

    poll_interval: float
    rate_window: float


@dataclass(frozen=True, slots=True)
class StatusView:
    """Everything one rendering of the status page shows."""

    version: str
    taken_at_unix: float
    ready: bool
    settings: Settings
    currency: str
    summary: str
    sources: tuple[Source, ...]
    models: tuple[Card, ...]
    gpus: tuple[Card, ...]
    cost: tuple[Card, ...]
    """The node's cost, then each server's cost, idle cost and prices per million tokens."""
    cost_summary: str
    """The node's cost per hour in one sentence: serving, idle, unattributed."""
    deployments: tuple[Card, ...]
    """Each local deployment and model as a whole (``docs/deployments.md``)."""
    window_seconds: float
    resolution_seconds: float
    slots: int
    times_unix: list[float | None]
    dropped_series: int

    @property
    def layout(self) -> str:
        """A digest of the cards and sources shown: when it changes, the page must be rendered anew."""
        parts = [repr(sorted(c.labels.items())) for c in (*self.models, *self.gpus)]
        parts += [repr([(f.metric, sorted(f.labels.items())) for f in c.figures]) for c in self.cost]
        parts += [repr(sorted(c.labels.items())) for c in self.deployments]
        parts += [f"{s.type}:{s.name}" for s in self.sources]
        return hashlib.blake2b("\n".join(parts).encode(), digest_size=8).hexdigest()


def points(snapshot: Snapshot) -> Iterable[Point]:
    """The values of one snapshot that the history keeps."""
    for row in model_rows(snapshot.servers):
        labels = (row.server.name, row.model)
        for spec in MODEL_SPECS:
            yield Point((spec.metric.name, labels), row.server.name, rounded(spec.get(row)))
    for gpu in snapshot.gpus:
        gpu_labels = gpu_key(gpu)
        for gpu_spec in GPU_SPECS:
            yield Point((gpu_spec.metric.name, gpu_labels), None, rounded(gpu_spec.get(gpu)))
    yield from cost_points(snapshot)
    yield from deployment_points(snapshot)


def record(history: History, snapshot: Snapshot) -> None:
    """Add one snapshot to the history."""
    history.record(snapshot.taken_at_unix, points(snapshot), (s.name for s in snapshot.servers))


def build(snapshot: Snapshot, history: History, settings: Settings, version: str) -> StatusView:
    """The view of ``snapshot`` with the history's charts."""
    return StatusView(
        version=version,
        taken_at_unix=snapshot.taken_at_unix,
        ready=snapshot.ready,
        settings=settings,
        currency=snapshot.currency,
        summary=_summary(snapshot),
        sources=_sources(snapshot),
        models=tuple(_model_cards(snapshot, history)),
        gpus=tuple(_gpu_cards(snapshot, history)),
        cost=tuple(cost_cards(snapshot, history)),
        cost_summary=cost_summary(snapshot),
        deployments=tuple(deployment_cards(snapshot, history)),
        window_seconds=history.window,
        resolution_seconds=history.resolution,
        slots=history.slots,
        times_unix=history.times(),
        dropped_series=history.dropped_series,
    )


# -- cards ---------------------------------------------------------------------------------------


def _model_cards(snapshot: Snapshot, history: History) -> Iterable[Card]:
    rows = {(row.server.name, row.model): row for row in model_rows(snapshot.servers)}
    remembered = {labels for metric, labels in history.series_keys() if metric in MODEL_METRICS and len(labels) == 2}
    order = {s.name: i for i, s in enumerate(snapshot.servers)}
    servers = {s.name: s for s in snapshot.servers}
    extra = sorted((k for k in remembered - rows.keys() if k[0] in order), key=lambda k: (order[k[0]], k[1]))
    for key in [*rows, *extra]:
        row = rows.get(key)
        figures = make_figures(MODEL_SPECS, row, {"server": key[0], "model": key[1]}, snapshot.currency, history)
        server = servers[key[0]]
        kind = server.sample.kind if server.sample is not None else "kind unknown while down"
        gpus = f"{len(server.gpus)} GPU{'s' if len(server.gpus) != 1 else ''}"
        note = "" if row is not None else _missing_model_note(server.status.up)
        yield Card(dict(figures[0].labels), key[1] or "(unnamed model)", f"{key[0]} · {kind} · {gpus}", note, figures)


def _missing_model_note(server_up: bool) -> str:
    if server_up:
        return "The server no longer reports this model; the charts show its history."
    return "The server is down: no current figures; the charts show the history."


def _gpu_cards(snapshot: Snapshot, history: History) -> Iterable[Card]:
    current = {gpu_key(g): g for g in snapshot.gpus}
    remembered = {labels for metric, labels in history.series_keys() if metric in GPU_METRICS and len(labels) == 2}
    lost = {(str(index), uuid) for index, uuid in snapshot.lost_gpus}
    extra = sorted((remembered | lost) - current.keys(), key=lambda k: (int(k[0]) if k[0].isdigit() else -1, k[1]))
    for key in [*current, *extra]:
        gpu = current.get(key)
        figures = make_figures(GPU_SPECS, gpu, {"gpu": key[0], "uuid": key[1]}, snapshot.currency, history)
        events = gpu.sample.clock_events if gpu is not None else None
        yield Card(
            labels=dict(figures[0].labels),
            title=f"GPU {key[0]}",
            subtitle=_gpu_subtitle(gpu, key[1]),
            note=_gpu_note(gpu, key, lost),
            figures=figures,
            clock_events=tuple(sorted(events)) if events is not None else None,
            clocks=clocks_text(events) if gpu is not None else "",
            throttled=throttled(events),
        )


def _gpu_subtitle(gpu: GpuView | None, uuid: str) -> str:
    if gpu is None:
        return uuid
    total = gpu.sample.memory_total_bytes
    memory = f", {format_number(total / GIB)} GiB" if total is not None else ""
    return f"{gpu.sample.name}{memory} · {uuid}"


def _gpu_note(gpu: GpuView | None, key: tuple[str, str], lost: set[tuple[str, str]]) -> str:
    if gpu is not None:
        return ""
    if key in lost:
        return "NVML reports this GPU lost: no current figures."
    return "Not read in the last GPU poll; the charts show its history."


# -- sources and summary -------------------------------------------------------------------------


def _sources(snapshot: Snapshot) -> tuple[Source, ...]:
    sources = [
        _source("server", s.name, s.sample.kind if s.sample is not None else "", s.status, snapshot.taken_at_unix)
        for s in snapshot.servers
        if s.role != "worker"  # GPUs of a deployment without /metrics: nothing is polled
    ]
    if snapshot.nvml is not None:
        driver = f"driver {snapshot.driver_version}" if snapshot.driver_version else ""
        sources.append(_source("nvml", "NVML (GPUs)", driver, snapshot.nvml, snapshot.taken_at_unix))
    return tuple(sources)


def _source(type_: Literal["server", "nvml"], name: str, kind: str, status: SourceStatus, now: float) -> Source:
    state: Literal["up", "down", "waiting"] = "up" if status.up else "waiting" if status == NOT_POLLED else "down"
    return Source(
        type=type_,
        name=name,
        kind=kind,
        up=status.up,
        state=state,
        error=status.error,
        last_success_unix=status.last_success_unix,
        poll_duration_seconds=status.duration_seconds,
        display=_source_text(state, status, now),
    )


def _source_text(state: str, status: SourceStatus, now: float) -> str:
    if state == "up":
        return f"Up. The last poll took {status.duration_seconds * 1000:,.0f} ms."
    if state == "waiting":
        return "Not polled yet."
    last = status.last_success_unix
    since = (
        "It never succeeded." if last is None else f"Last success at {clock_text(last)} ({age(now - last)} earlier)."
    )
    return f"Down: {status.error or 'unknown error'}. {since}"


def _summary(snapshot: Snapshot) -> str:
    servers = tuple(s for s in snapshot.servers if s.role != "worker")
    parts = [
        f"{sum(s.status.up for s in servers)} of {len(servers)} servers up" if servers else "No servers configured"
    ]
    if snapshot.nvml is not None:
        gpus = f"{len(snapshot.gpus)} GPU{'s' if len(snapshot.gpus) != 1 else ''}"
        parts.append(f"NVML up, {gpus}" if snapshot.nvml.up else "NVML down")
    if snapshot.lost_gpus:
        parts.append(f"{len(snapshot.lost_gpus)} GPU(s) lost")
    held = sum(throttled(g.sample.clock_events) for g in snapshot.gpus)
    if held:
        parts.append(f"{held} GPU{'s' if held != 1 else ''} throttled")
    waiting = sum(row.sample.requests_waiting or 0.0 for row in model_rows(servers))
    parts.append(f"{waiting:,.0f} request{'s' if waiting != 1 else ''} waiting" if waiting else "nothing queued")
    return " · ".join(parts)


def clock_text(unix: float) -> str:
    """Unix seconds as ``2025-01-31 12:03:04 UTC``."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(seconds: float) -> str:
    """A duration in words: ``35 s``, ``12 min``, ``3.5 h``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{math.floor(seconds)} s"
    if seconds < 7200:
        return f"{math.floor(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
