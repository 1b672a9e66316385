"""``GET /api/v1/status``: the status page's data as JSON (version 1, documented in README).

Every figure names the ``/metrics`` series it equals (``metric`` and ``labels``), with its exact value
(``null`` where ``/metrics`` leaves the series out, or serves NaN or ±Inf), the text the page shows,
and its history: one value per slot of the last 15 minutes, aligned with ``history.times_unix``.
``taken_at_unix`` equals ``inference_exporter_snapshot_timestamp_seconds`` of the same snapshot.
"""

from __future__ import annotations

import json
import math
from typing import Any

from exporter.serve.status.view import Card, Figure, Source, StatusView, clock_text

API_VERSION = 1


def document(view: StatusView) -> dict[str, Any]:
    """The JSON document of one view."""
    return {
        "api_version": API_VERSION,
        "exporter_version": view.version,
        "taken_at_unix": view.taken_at_unix,
        "taken_at_display": clock_text(view.taken_at_unix),
        "ready": view.ready,
        "poll_interval_seconds": view.settings.poll_interval,
        "rate_window_seconds": view.settings.rate_window,
        "currency": view.currency,
        "summary": view.summary,
        "cost_summary": view.cost_summary,
        "layout": view.layout,
        "history": {
            "window_seconds": view.window_seconds,
            "resolution_seconds": view.resolution_seconds,
            "slots": view.slots,
            "times_unix": view.times_unix,
            "dropped_series": view.dropped_series,
        },
        "sources": [_source(s) for s in view.sources],
        "models": [_card(c) for c in view.models],
        "gpus": [_card(c) for c in view.gpus],
        "cost": [_card(c) for c in view.cost],
        "deployments": [_card(c) for c in view.deployments],
    }


def encode(view: StatusView) -> bytes:
    """The document as compact UTF-8 JSON."""
    return json.dumps(document(view), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _source(source: Source) -> dict[str, Any]:
    return {
        "type": source.type,
        "name": source.name,
        "kind": source.kind,
        "up": source.up,
        "state": source.state,
        "error": source.error,
        "last_success_unix": source.last_success_unix,
        "poll_duration_seconds": source.poll_duration_seconds,
        "display": source.display,
    }


def _card(card: Card) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "labels": card.labels,
        "title": card.title,
        "subtitle": card.subtitle,
        "note": card.note,
        "figures": [_figure(f) for f in card.figures],
    }
    if "gpu" in card.labels:
        fields |= {"clock_events": card.clock_events, "clocks": card.clocks, "throttled": card.throttled}
    return fields


def _figure(figure: Figure) -> dict[str, Any]:
    return {
        "metric": figure.metric,
        "labels": figure.labels,
        "caption": figure.caption,
        "value": figure.value if figure.value is None or math.isfinite(figure.value) else None,
        "display": figure.display,
        "range_display": figure.range_display,
        "history": figure.history,
    }
