"""The same series served by ``prometheus_client``: built afresh on every scrape, or cached once per snapshot.

The collector walks the same snapshot through the same ``families`` the exporter renders and turns
each into ``prometheus_client`` metric families. Two ways to serve them:

- ``every-scrape``: ``prometheus_client``'s own aiohttp handler, which collects, encodes (and
  compresses) on every request: the usual way.
- ``per-snapshot``: ``generate_latest`` (or the OpenMetrics encoder) run once per snapshot and form,
  its bytes (and their gzip) cached until the next snapshot: the library at its best, judged against
  the exporter's own renderer.

``python -m bench.baseline --mode per-snapshot --config.file C --gpu.simulate h100x8
--web.listen-address 127.0.0.1:P`` runs the exporter's real service (the same poll loop, compose and
publish against the same servers) and serves ``/metrics`` that way, with ``/-/ready``, so that the
scrape benchmark measures both sides as processes of their own, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import signal
import time
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
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from exporter import logging as exporter_logging
from exporter.cli import parse_listen_address
from exporter.config import load_config
from exporter.exposition import metrics as m
from exporter.exposition.families import families
from exporter.exposition.text import Sample
from exporter.fakes.nvml import SCENARIOS
from exporter.model import Histogram, Snapshot
from exporter.serve.service import Service, gpu_source
from exporter.sources.servers import adapter_kinds

MODES = ("every-scrape", "per-snapshot")


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


def registry_of(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry holding only the snapshot's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def baseline_app(snapshot: Callable[[], Snapshot]) -> web.Application:
    """An aiohttp app that serves ``/metrics`` with ``prometheus_client``'s own aiohttp handler."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry_of(snapshot)))
    return app


class PerSnapshot:
    """``/metrics`` from ``prometheus_client``'s encoders, run at most once per snapshot and format."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot
        self._registry = registry_of(snapshot)
        self._of: Snapshot | None = None
        self._plain: dict[str, bytes] = {}
        self._zipped: dict[str, bytes] = {}

    async def handle(self, request: web.Request) -> web.Response:
        """Encode (and compress) on the first scrape of a snapshot that asks for it; then serve the bytes."""
        snapshot = self._snapshot()
        if snapshot is not self._of:
            self._of, self._plain, self._zipped = snapshot, {}, {}
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = self._plain.get(content_type)
        if body is None:
            body = self._plain[content_type] = encoder(self._registry)
        if "gzip" not in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=body, headers={"Content-Type": content_type})
        zipped = self._zipped.get(content_type)
        if zipped is None:
            zipped = self._zipped[content_type] = gzip.compress(body)
        return web.Response(body=zipped, headers={"Content-Type": content_type, "Content-Encoding": "gzip"})


def cached_app(snapshot: Callable[[], Snapshot]) -> web.Application:
    """An aiohttp app that serves ``/metrics`` from ``PerSnapshot``."""
    app = web.Application()
    app.router.add_get("/metrics", PerSnapshot(snapshot).handle)
    return app


async def _serve(service: Service, mode: str, host: str | None, port: int) -> None:
    snapshot = lambda: service.exposition.snapshot  # noqa: E731
    app = cached_app(snapshot) if mode == "per-snapshot" else baseline_app(snapshot)

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(text="ready\n") if service.ready else web.Response(status=503)

    app.router.add_get("/-/ready", ready)
    await service.start()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--config.file", dest="config_file", required=True)
    parser.add_argument("--gpu.simulate", dest="gpu_simulate", default="h100x8")
    parser.add_argument("--web.listen-address", dest="listen", required=True)
    parser.add_argument("--log.level", dest="log_level", default="warn")
    parser.add_argument("--log.format", dest="log_format", default="json")
    args = parser.parse_args()
    exporter_logging.configure(args.log_level, args.log_format)
    listen = parse_listen_address(args.listen)
    nvml = SCENARIOS[args.gpu_simulate](time.monotonic)
    config = load_config(args.config_file, kinds=adapter_kinds())
    service = Service(config, gpu_factory=lambda config: gpu_source(config, nvml))
    asyncio.run(_serve(service, args.mode, listen.host, listen.port))


if __name__ == "__main__":
    main()
