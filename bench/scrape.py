"""Scrape latency: ``GET /metrics`` p50/p99 of the exporter against a ``prometheus_client`` collector.

Two nodes, each with 8 fake H100s and full latency histograms: (a) 4 servers and (b) 64. Both sides
serve the same snapshot from the same event loop: the exporter through its own ``/metrics`` handler
(bytes rendered once per snapshot, republished every second as a 1 s poll would), the baseline
through ``prometheus_client``'s aiohttp handler and a custom collector that builds every family on
each scrape. The requests come from ``bench.loadgen`` in another process on another CPU, one at a
time over a keep-alive connection, alternating between the two sides in rounds so that drift in the
machine's load hits both.

Four ways to ask: plain text and OpenMetrics with gzip (as Prometheus asks), while the snapshot is
published again every second as a 1 s poll does; then OpenMetrics with gzip with a new snapshot
published just before each scrape (every poll is scraped), and with five snapshots 100 ms apart
before each scrape (a 1 s poll scraped every 5 s, in compressed time: most snapshots are never read
and are not rendered, the one a scrape reads is rendered when it is published). The baseline renders
on every scrape whatever was published, so those two ways compare with its OpenMetrics+gzip figures.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bench.baseline import baseline_app
from bench.common import PYTHON, ROOT, Row, cpus, ms, percentile, times
from bench.snapshots import build_snapshot
from exporter.config import Config
from exporter.model import Snapshot
from exporter.serve import web as exporter_web
from exporter.serve.service import Service

PUBLISH_PATH = "/-/bench/publish"
P99_TARGET = 0.005
RATIO_TARGET = 10.0


@dataclass(frozen=True, slots=True)
class Way:
    """One way of asking for the metrics; ``polling``: the snapshot is published again every second meanwhile."""

    name: str
    flags: tuple[str, ...]
    polling: bool = True
    baseline: str = ""
    """Compare with the baseline's figures of this way instead of measuring it again."""
    least: int = 40
    """Requests per round, at least."""


WAYS = (
    Way("text", ()),
    Way("OpenMetrics+gzip", ("--openmetrics", "--gzip")),
    Way(
        "OpenMetrics+gzip, a new snapshot before each",
        ("--openmetrics", "--gzip", "--fresh", PUBLISH_PATH),
        polling=False,
        baseline="OpenMetrics+gzip",
    ),
    Way(
        "OpenMetrics+gzip, 5 new snapshots before each",
        ("--openmetrics", "--gzip", "--fresh", PUBLISH_PATH, "--publishes", "5", "--gap", "0.1"),
        polling=False,
        baseline="OpenMetrics+gzip",
        least=25,
    ),
)


def exporter_app(service: Service, snapshot: Snapshot) -> web.Application:
    """The exporter's own ``/metrics`` handler over ``service``, plus a route that publishes ``snapshot`` again."""

    async def publish(_request: web.Request) -> web.Response:
        service.publish(snapshot)
        return web.Response(status=204)

    app = web.Application()
    app[exporter_web.SERVICE] = service
    app[exporter_web.SETTINGS] = exporter_web.WebSettings()
    app.router.add_get("/metrics", exporter_web.metrics)
    app.router.add_post(PUBLISH_PATH, publish)
    return app


def with_publish_noop(app: web.Application) -> web.Application:
    """The baseline renders on every scrape anyway: publishing is a no-op there."""

    async def publish(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    app.router.add_post(PUBLISH_PATH, publish)
    return app


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """Serve ``app`` on a free loopback port for the duration of the block."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def loadgen(port: int, way: Way, seconds: float, least: int, cpu: int | None) -> tuple[list[float], int]:
    """Run ``bench.loadgen`` in its own process; return the latencies and the body size."""
    args = ["-m", "bench.loadgen", "--port", str(port), "--seconds", str(seconds), "--least", str(least), *way.flags]
    process = await asyncio.create_subprocess_exec(
        PYTHON, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"loadgen failed: {err.decode()[-500:]}")
    result = json.loads(out)
    return list(result["latencies"]), int(result["bytes"])


async def republish_every(service: Service, snapshot: Snapshot, interval: float) -> None:
    """Publish the snapshot again every ``interval`` seconds, as the poller does after each poll."""
    while True:
        await asyncio.sleep(interval)
        service.publish(snapshot)


def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample of an exposition, for comparing two of them."""
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@dataclass
class Scenario:
    """One node to scrape: a label, the number of servers, and the latencies measured per way and side."""

    label: str
    servers: int
    latencies: dict[tuple[str, str], list[float]]
    sizes: dict[tuple[str, str], int]


async def measure(label: str, servers: int, seconds: float, rounds: int) -> tuple[Scenario, bool]:
    """Scrape both sides in alternating rounds; return the latencies and whether they serve the same series."""
    snapshot = await build_snapshot(servers)
    service = Service(Config(), gpu_factory=lambda _config: None)
    service.publish(snapshot)
    scenario = Scenario(label, servers, {}, {})
    load_cpu = cpus()[-1] if len(cpus()) > 1 else None
    baseline = with_publish_noop(baseline_app(lambda: service.exposition.snapshot))
    async with serving(exporter_app(service, snapshot)) as ours, serving(baseline) as base:
        same = await _same_series(ours, base)
        for way in WAYS:
            ticker = asyncio.create_task(republish_every(service, snapshot, 1.0)) if way.polling else None
            try:
                for _ in range(rounds):
                    sides = (("ours", ours),) if way.baseline else (("ours", ours), ("baseline", base))
                    for side, port in sides:
                        latencies, size = await loadgen(port, way, seconds, least=way.least, cpu=load_cpu)
                        scenario.latencies.setdefault((way.name, side), []).extend(latencies)
                        scenario.sizes[(way.name, side)] = size
            finally:
                if ticker is not None:
                    ticker.cancel()
    return scenario, same


async def _same_series(ours: int, base: int) -> bool:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        bodies = []
        for port in (ours, base):
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                bodies.append(await response.text())
    return series(bodies[0]) == series(bodies[1])


def rows(scenario: Scenario, same: bool) -> list[Row]:
    """The table rows of one scenario; targets apply to p99 at 64 servers."""
    name = f"scrape ({scenario.label}) 8 GPUs, {scenario.servers} servers"
    out = [Row(name, "same series as the baseline", "yes" if same else "NO", met=same)]
    for way in WAYS:
        ours = scenario.latencies[(way.name, "ours")]
        base = scenario.latencies[(way.baseline or way.name, "baseline")]
        size = scenario.sizes[(way.name, "ours")] / 1024
        p50, p99 = percentile(ours, 50), percentile(ours, 99)
        ratio = percentile(base, 99) / p99
        targeted = scenario.servers >= 64
        target = f"p99 < {ms(P99_TARGET)}, ≥ {RATIO_TARGET:g}×" if targeted else "—"
        met = p99 < P99_TARGET and ratio >= RATIO_TARGET if targeted else None
        figure = f"p50 / p99, {way.name} ({size:.0f} KiB; n = {len(ours)} / {len(base)})"
        ours_text = f"{ms(p50)} / {ms(p99)}"
        base_text = f"{ms(percentile(base, 50))} / {ms(percentile(base, 99))}"
        out.append(Row(name, figure, ours_text, base_text, f"{times(ratio)} (p99)", target, met))
    return out


def run(*, full: bool = False) -> list[Row]:
    """Both scenarios; ``full`` measures longer."""
    seconds, rounds = (3.0, 5) if full else (1.0, 3)
    out: list[Row] = []
    for label, servers in (("a", 4), ("b", 64)):
        scenario, same = _run_pinned(measure(label, servers, seconds, rounds))
        out += rows(scenario, same)
    return out


def _run_pinned(coroutine: Coroutine[None, None, tuple[Scenario, bool]]) -> tuple[Scenario, bool]:
    """Run on the first CPU while the load generator takes the last, then restore the affinity."""
    before = os.sched_getaffinity(0)
    if len(before) > 1:
        os.sched_setaffinity(0, {min(before)})
    try:
        return asyncio.run(coroutine)
    finally:
        os.sched_setaffinity(0, before)


if __name__ == "__main__":
    from bench.common import table
    from exporter import logging as exporter_logging

    exporter_logging.configure("warn")
    print(table(run()))
