"""Scrape latency while the exporter really polls: its ``/metrics`` against ``prometheus_client``, same polling.

A swarm of simulated vLLM processes serves 64 servers (the recorded body with both engines: 81 KB
each, full histograms, live counters, a model name of its own each) on loopback. Each side polls
all of them every second over real HTTP, with 8 simulated GPUs, as a process of its own pinned to
one CPU (the swarm and the load generator share the other, the swarm at a lower priority):

- **the exporter**, its command line as users run it;
- **``prometheus_client``, ``generate_latest`` once per snapshot** (``bench.baseline --mode
  per-snapshot``): the exporter's own service (the same poll loop, compose and publish), with
  ``/metrics`` encoded by the library at most once per snapshot and form and its bytes cached: the
  library at its best;
- **``prometheus_client`` rendering every scrape** (``--mode every-scrape``): the library's aiohttp
  handler over a collector of the same snapshot: the usual way.

Sides run one at a time, so each has its CPU to itself, in rounds that alternate them (``--full``:
three rounds) so that drift in the machine's load hits all. ``bench.loadgen`` asks as Prometheus
does (OpenMetrics, gzip, keep-alive) in three ways: **paced** (a random wait before each scrape,
25 ms on average, so scrapes land at every moment of the poll cycle), **back to back**, and **20
scrapers at once**, back to back. The exporter's status JSON and ``/-/healthy`` are timed paced too.

Publishing's CPU per snapshot (compose, render, gzip, and the status page's history) is measured
in this process on a snapshot of the same 64 servers, against composing and encoding the same
snapshot with ``prometheus_client``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from bench.baseline import registry_of
from bench.common import PYTHON, ROOT, Row, cpu_seconds, cpus, median, ms, percentile, times
from bench.daemon import NICE, Daemon, Upstreams, scratch, write_config
from bench.snapshots import build_inputs
from exporter.config import Config
from exporter.exposition.cache import GZIP_LEVEL, Exposition, Variant
from exporter.poll import compose
from exporter.serve.status import StatusBoard

SERVERS = 64
PACE = 0.025
"""Mean seconds between paced scrapes."""
P50_TARGET, P99_TARGET, CONCURRENT_P99_TARGET = 0.001, 0.005, 0.010
PROMETHEUS = Variant(openmetrics=True, gzip=True)


@dataclass(frozen=True, slots=True)
class Way:
    """One way of asking."""

    name: str
    flags: tuple[str, ...]
    seconds: float
    least: int
    path: str = "/metrics"


PACED = Way("paced", ("--paced", str(PACE), "--openmetrics", "--gzip"), 12.0, 400)
SLOW_PACED = Way("paced", PACED.flags, 5.0, 40)
"""For the side that renders every scrape (about 100 ms each): fewer scrapes, in less time."""
BACK_TO_BACK = Way("back to back", ("--openmetrics", "--gzip"), 3.0, 200)
CONCURRENT = Way("20 scrapers at once", ("--connections", "20", "--openmetrics", "--gzip"), 3.0, 400)
STATUS = Way("/api/v1/status, paced", ("--paced", "0.05", "--gzip"), 4.0, 60, "/api/v1/status")
HEALTH = Way("/-/healthy, paced", ("--paced", str(PACE)), 3.0, 100, "/-/healthy")


@dataclass(frozen=True, slots=True)
class Side:
    """One program that polls the servers and serves ``/metrics``."""

    name: str
    module: tuple[str, ...]
    ways: tuple[Way, ...]


OURS = Side("exporter", ("exporter",), (PACED, BACK_TO_BACK, CONCURRENT, STATUS, HEALTH))
CACHED = Side(
    "prometheus_client, generate_latest once per snapshot",
    ("bench.baseline", "--mode", "per-snapshot"),
    (PACED, BACK_TO_BACK, CONCURRENT),
)
EVERY = Side("prometheus_client, rendering every scrape", ("bench.baseline", "--mode", "every-scrape"), (SLOW_PACED,))
SIDES = (OURS, CACHED, EVERY)


@dataclass
class Measured:
    """Per side: latencies per way, body sizes, CPU share while scraped, the series served, checks."""

    latencies: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    series: dict[str, set[tuple[str, tuple[tuple[str, str], ...]]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def loadgen(port: int, way: Way, cpu: int | None, seed: int) -> tuple[list[float], int]:
    """Run ``bench.loadgen`` in its own process on ``cpu``; return the latencies and the body size."""
    args = ["-m", "bench.loadgen", "--port", str(port), "--path", way.path, "--seconds", str(way.seconds)]
    args += ["--least", str(way.least), "--seed", str(seed), *way.flags]
    command = ["taskset", "-c", str(cpu), PYTHON, *args] if cpu is not None else [PYTHON, *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=way.seconds + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr.decode()[-500:]}")
    result = json.loads(done.stdout)
    return list(result["latencies"]), int(result["bytes"])


def series_of(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every series (name and labels, not values) of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _health(text: str, servers: int) -> str | None:
    up = sum(1 for line in text.splitlines() if line.startswith("inference_server_up{") and line.endswith(" 1.0"))
    return None if up == servers else f"{up}/{servers} servers up"


def measure_side(side: Side, config: Path, tmp: Path, measured: Measured, seed: int) -> None:
    """Start one side, let it poll a few seconds, scrape it every way; record what it used."""
    server_cpu, load_cpu = cpus()[-1], (cpus()[0] if len(cpus()) > 1 else None)
    log = tmp / f"{side.module[0]}-{seed}.log"
    with Daemon(config, cpu=server_cpu, log=log, module=side.module) as daemon:
        time.sleep(3.0)  # warm-up: every server polled a few times, connections open, forms asked for
        started, cpu_started = time.monotonic(), cpu_seconds(daemon.pid)
        for way in side.ways:
            latencies, size = loadgen(daemon.port, way, load_cpu, seed)
            measured.latencies.setdefault((side.name, way.name), []).extend(latencies)
            measured.sizes[(side.name, way.name)] = size
        share = (cpu_seconds(daemon.pid) - cpu_started) / (time.monotonic() - started)
        measured.cpu.setdefault(side.name, []).append(share)
        text = daemon.metrics()
        measured.series.setdefault(side.name, series_of(text))
        problem = _health(text, SERVERS)
        if problem is not None:
            measured.problems.append(f"{side.name}: {problem}")


def measure(rounds: int) -> Measured:
    """Every side, in ``rounds`` alternating rounds, against one swarm."""
    measured = Measured()
    with scratch() as tmp, Upstreams(SERVERS, cpu=cpus()[0], engines=2, processes=4, nice=NICE) as swarm:
        config = Path(tmp) / "scrape.yml"
        write_config(config, swarm.urls, poll_interval="1s", timeout="800ms", kind="vllm")
        with config.open("a", encoding="utf-8") as file:
            file.write(f"max_connections: {SERVERS}\n")
        for seed in range(1, rounds + 1):
            for side in SIDES:
                measure_side(side, config, Path(tmp), measured, seed)
    return measured


# -- publishing's CPU per snapshot -------------------------------------------------------------


def _cpu_ms(action: object, repeats: int) -> float:
    """Median CPU milliseconds (this thread) of ``action()``."""
    assert callable(action)
    samples = []
    for _ in range(repeats):
        started = time.thread_time()
        action()
        samples.append((time.thread_time() - started) * 1000)
    return median(samples)


def publishing_cost(repeats: int = 15) -> dict[str, float]:
    """CPU ms per snapshot of 64 servers: compose, render, gzip, history; and ``prometheus_client``'s encoding."""
    inputs = asyncio.run(build_inputs(SERVERS))
    snapshot = compose.compose(inputs)
    om = Exposition(snapshot, prepared=False).body(Variant(True, False))
    board = StatusBoard(Config(poll_interval=1.0), snapshot)
    registry = registry_of(lambda: snapshot)
    library = generate_openmetrics(registry)
    return {
        "compose": _cpu_ms(lambda: compose.compose(inputs), repeats),
        "render": _cpu_ms(lambda: Exposition(snapshot, prepared=False).body(Variant(True, False)), repeats),
        "gzip": _cpu_ms(lambda: zlib.compress(om, GZIP_LEVEL, wbits=31), repeats),
        "history": _cpu_ms(lambda: board.record(snapshot, Config(poll_interval=1.0)), repeats),
        "library render": _cpu_ms(lambda: generate_openmetrics(registry), repeats),
        "library gzip": _cpu_ms(lambda: gzip.compress(library), repeats),
        "bytes": float(len(om)),
    }


# -- rows --------------------------------------------------------------------------------------


def _p(values: list[float]) -> str:
    return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"


def latency_rows(measured: Measured) -> list[Row]:
    """One row per way: the exporter's p50 / p99 against each baseline's, with the targets."""
    name = f"scrape: {SERVERS} servers polled every 1 s, 8 GPUs"
    out = []
    for way in (PACED, BACK_TO_BACK, CONCURRENT):
        ours = measured.latencies[(OURS.name, way.name)]
        bases = [side for side in (CACHED, EVERY) if (side.name, way.name) in measured.latencies]
        base_text = "; ".join(
            f"{side.name}: {_p(measured.latencies[(side.name, way.name)])}"
            f" (n = {len(measured.latencies[(side.name, way.name)])})"
            for side in bases
        )
        cached = measured.latencies[(CACHED.name, way.name)]
        ratio = f"{times(percentile(cached, 99) / percentile(ours, 99))} (p99, against once per snapshot)"
        size = measured.sizes[(OURS.name, way.name)] / 1024
        figure = f"p50 / p99, {way.name}, OpenMetrics + gzip ({size:.0f} KiB; n = {len(ours)})"
        if way is CONCURRENT:
            target, met = f"p99 < {ms(CONCURRENT_P99_TARGET)}", percentile(ours, 99) < CONCURRENT_P99_TARGET
        elif way is PACED:
            target = f"p50 < {ms(P50_TARGET)}, p99 < {ms(P99_TARGET)}"
            met = percentile(ours, 50) < P50_TARGET and percentile(ours, 99) < P99_TARGET
        else:
            target, met = "—", None
        out.append(Row(name, figure, _p(ours), base_text, ratio, target, met))
    for way in (STATUS, HEALTH):
        ours = measured.latencies[(OURS.name, way.name)]
        figure = f"p50 / p99 / max, {way.name} (n = {len(ours)})"
        out.append(Row(name, figure, f"{_p(ours)} / {ms(max(ours))}"))
    return out


def check_rows(measured: Measured) -> list[Row]:
    """Same series on every side, every server up, and each side's CPU while scraped."""
    name = f"scrape: {SERVERS} servers polled every 1 s, 8 GPUs"
    ours = measured.series[OURS.name]
    same = all(series == ours for series in measured.series.values())
    checks = "; ".join(measured.problems) or "every server up on every side"
    cpu = {side: median(shares) for side, shares in measured.cpu.items()}
    cpu_text = "; ".join(f"{side}: {share:.0%}" for side, share in cpu.items() if side != OURS.name)
    return [
        Row(name, "same series on every side; servers up", f"{'yes' if same else 'NO'}; {checks}", met=same),
        Row(name, "CPU of the side while scraped (share of its core)", f"{cpu[OURS.name]:.0%}", cpu_text),
    ]


def cost_rows(cost: dict[str, float]) -> list[Row]:
    """Publishing's CPU per snapshot, with ``prometheus_client`` encoding the same snapshot."""
    name = f"publish: a snapshot of {SERVERS} servers, 8 GPUs ({cost['bytes'] / 1024:.0f} KiB of OpenMetrics)"
    ours = cost["compose"] + cost["render"] + cost["gzip"] + cost["history"]
    base = cost["compose"] + cost["library render"] + cost["library gzip"]
    parts = f"compose {cost['compose']:.1f} + render {cost['render']:.1f} + gzip {cost['gzip']:.1f}"
    return [
        Row(
            name,
            "CPU per snapshot, ms (exporter: + status history)",
            f"{ours:.1f} ({parts} + history {cost['history']:.1f})",
            f"{base:.1f} (compose {cost['compose']:.1f} + generate_latest {cost['library render']:.1f} "
            f"+ gzip {cost['library gzip']:.1f})",
            times(base / ours),
        )
    ]


def run(*, full: bool = False) -> list[Row]:
    """One round of every side (three with ``full``), then publishing's cost."""
    measured = measure(3 if full else 1)
    return latency_rows(measured) + check_rows(measured) + cost_rows(publishing_cost())


if __name__ == "__main__":
    import sys

    from bench.common import table
    from exporter import logging as exporter_logging

    exporter_logging.configure("warn")
    print(table(run(full="--full" in sys.argv)))
