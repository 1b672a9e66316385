"""Checks shared by the status page's tests: read its figures from HTML, compare them with /metrics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from exporter.serve.status.deployments import ROW_SPECS, WHOLE_SPECS
from exporter.serve.status.figures import (
    GPU_SPECS,
    MODEL_SPECS,
    NODE_SPECS,
    PRICE_SPECS,
    SERVER_COST_SPECS,
    Spec,
    display,
)

ALL_SPECS: tuple[Spec[Any], ...] = (
    *NODE_SPECS,
    *SERVER_COST_SPECS,
    *PRICE_SPECS,
    *MODEL_SPECS,
    *GPU_SPECS,
    *ROW_SPECS,
    *WHOLE_SPECS,
)
SPECS: dict[str, Spec[Any]] = {spec.metric.name: spec for spec in ALL_SPECS}
"""Each figure's spec by its metric (the two prices of a phase share their metric and their text)."""


@dataclass(frozen=True, slots=True)
class ShownFigure:
    """One figure as a page or the JSON shows it."""

    metric: str
    labels: dict[str, str]
    value: float | None
    text: str


class _FigureParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[ShownFigure] = []
        self._open: dict[str, str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "span" and "data-metric" in values:
            self._open, self._text = values, []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            attrs, self._open = self._open, None
            value = float(attrs["data-value"]) if attrs["data-value"] else None
            self.figures.append(
                ShownFigure(attrs["data-metric"], json.loads(attrs["data-labels"]), value, "".join(self._text))
            )


def html_figures(page: str) -> list[ShownFigure]:
    """Every figure of a rendered page, in page order."""
    parser = _FigureParser()
    parser.feed(page)
    return parser.figures


def json_figures(status: dict[str, Any]) -> list[ShownFigure]:
    """Every figure of an ``/api/v1/status`` document, in page order."""
    cards = [*status["cost"], *status["deployments"], *status["models"], *status["gpus"]]
    return [ShownFigure(f["metric"], f["labels"], f["value"], f["display"]) for card in cards for f in card["figures"]]


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def snapshot_time(text: str) -> float | None:
    """``inference_exporter_snapshot_timestamp_seconds`` of an exposition."""
    return scraped(text).get(("inference_exporter_snapshot_timestamp_seconds", frozenset()))


def assert_figures_match(figures: list[ShownFigure], metrics_text: str, currency: str) -> None:
    """Each figure equals its series in ``metrics_text``, is absent where the series is, and reads as it should."""
    samples = scraped(metrics_text)
    assert figures, "no figures shown"
    for figure in figures:
        served = samples.get((figure.metric, frozenset(figure.labels.items())))
        where = f"{figure.metric}{figure.labels}"
        if served is None or not math.isfinite(served):
            assert figure.value is None, f"{where}: shown {figure.value}, /metrics has {served}"
        else:
            assert figure.value == served, f"{where}: shown {figure.value}, /metrics has {served}"
        assert figure.text == display(SPECS[figure.metric], served, currency), f"{where}: text {figure.text!r}"


def assert_every_series_is_shown(figures: list[ShownFigure], metrics_text: str) -> None:
    """Every series of the figures' metrics in ``metrics_text`` has a figure on the page."""
    shown = {(f.metric, frozenset(f.labels.items())) for f in figures}
    served = {key for key in scraped(metrics_text) if key[0] in SPECS}
    assert served <= shown, f"served but not shown: {sorted(served - shown)}"
