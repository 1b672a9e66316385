"""The cards and figures of the status page: each figure one series of ``/metrics``, with its chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from exporter.serve.status.figures import Spec, display
from exporter.serve.status.history import History

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Figure:
    """One number with its chart: the ``/metrics`` series it equals, and its last 15 minutes."""

    metric: str
    labels: dict[str, str]
    caption: str
    value: float | None
    display: str
    history: list[float | None]
    """One value per history slot, oldest first, rounded to 4 significant digits; ``None`` where absent."""
    range_display: str


@dataclass(frozen=True, slots=True)
class Card:
    """One model of one server, or one GPU."""

    labels: dict[str, str]
    title: str
    subtitle: str
    note: str
    """Why the figures are missing (server down, GPU lost), or ``""``."""
    figures: tuple[Figure, ...]
    clock_events: tuple[str, ...] | None = None
    """GPUs only: the active clock event reasons, ``None`` where not reported."""
    clocks: str = ""
    """GPUs only: the clock events in words (``Throttled: power cap.``)."""
    throttled: bool = False


def make_figures(
    specs: Sequence[Spec[T]], item: T | None, labels: dict[str, str], currency: str, history: History
) -> tuple[Figure, ...]:
    """The figures of ``specs`` for ``item``, in order."""
    return tuple(make_figure(spec, item, labels, currency, history) for spec in specs)


def make_figure(
    spec: Spec[T], item: T | None, labels: dict[str, str], currency: str, history: History, *, caption: str = ""
) -> Figure:
    """One figure of ``spec`` for ``item`` (``None``: nothing current) with its history; ``caption`` overrides."""
    labels = labels | dict(spec.labels)
    values = history.values((spec.metric.name, tuple(labels.values())))
    value = spec.get(item) if item is not None else None
    return Figure(
        metric=spec.metric.name,
        labels=labels,
        caption=caption or spec.caption,
        value=value,
        display=display(spec, value, currency),
        history=values,
        range_display=_range(spec, values, currency, history.window),
    )


def rounded(value: float | None) -> float | None:
    """Four significant digits are plenty for a chart, and keep the JSON short."""
    return None if value is None else float(f"{value:.4g}")


def _range(spec: Spec[T], values: list[float | None], currency: str, window: float) -> str:
    known = [v for v in values if v is not None]
    span = f"last {window / 60:g} min"
    if not known:
        return f"{spec.caption}, {span}: no data yet"
    return f"{spec.caption}, {span}: from {spec.text(min(known), currency)} to {spec.text(max(known), currency)}"
