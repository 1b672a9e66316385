"""The usual way to serve the same series: a ``prometheus_client`` custom collector, built afresh on every scrape.

The collector walks the same snapshot through the same ``families`` the exporter renders, turns each
into ``prometheus_client`` metric families, and ``prometheus_client``'s own aiohttp handler encodes
(and compresses) them on every request. Only the rendering strategy differs from the exporter's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from exporter.exposition import metrics as m
from exporter.exposition.families import families
from exporter.exposition.text import Sample
from exporter.model import Histogram, Snapshot


class SnapshotCollector(Collector):
    """Yields fresh ``prometheus_client`` families for the current snapshot on every ``collect``."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        for metric, samples in families(self._snapshot()):
            if samples:
                yield convert(metric, samples)


def convert(metric: m.Metric, samples: Sequence[Sample]) -> Metric:
    """One family as ``prometheus_client`` builds it."""
    labels = list(metric.labels)
    if metric.type == "histogram":
        histogram = HistogramMetricFamily(metric.name, metric.help, labels=labels)
        for values, value in samples:
            assert isinstance(value, Histogram)
            buckets = [(floatToGoString(bound), count) for bound, count in value.buckets]  # type: ignore[no-untyped-call]
            histogram.add_metric(list(values), buckets, value.sum)
        return histogram
    if metric.type == "info":
        info = InfoMetricFamily(metric.name.removesuffix("_info"), metric.help, labels=labels)
        for values, _ in samples:
            info.add_metric(list(values), {})
        return info
    family = (CounterMetricFamily if metric.type == "counter" else GaugeMetricFamily)(
        metric.name, metric.help, labels=labels
    )
    for values, value in samples:
        assert not isinstance(value, Histogram)
        family.add_metric(list(values), value)
    return family


def baseline_app(snapshot: Callable[[], Snapshot]) -> web.Application:
    """An aiohttp app that serves ``/metrics`` with ``prometheus_client``'s own aiohttp handler."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    return app
