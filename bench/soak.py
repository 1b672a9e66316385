"""Soak: the exporter polls 8 changing upstreams and the fake 8-GPU node every 100 ms, for 10 minutes.

The exporter runs as users run it (its command line, ``--gpu.simulate h100x8``), polling every 100 ms
with an 80 ms timeout and the default 60 s rate window. The 8 upstreams serve the recorded vLLM body
(about 80 KB, two engines, full histograms) with live counters whose rates change every 2 s. A
scraper reads ``/metrics`` once a second as Prometheus would (OpenMetrics, gzip).

Figures: polls made per server, resident memory at ready, after the warm-up (the first minute,
while the rate windows fill) and at the end, its growth after the warm-up, open file descriptors,
failed scrapes, and the exporter's CPU. Targets: RSS growth under 5 MB, file descriptors flat (the
highest count in the last quarter of the run no higher than in the first quarter after the warm-up).

    python -m bench.soak                 # 600 s: about 6,000 polls of each server
    python -m bench.soak --seconds 120   # a shorter run (warm-up: a quarter of it, at most 60 s)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from bench.common import Row, cpu_seconds, machine, open_fds, rss_bytes, sample, table
from bench.daemon import PROMETHEUS_HEADERS, Daemon, scratch, write_config
from bench.upstream import CONTENT_TYPE, Rate, SimulatedServer, vllm_template

SECONDS, POLL, WARM_UP, SERVERS = 600.0, 0.1, 60.0, 8
MB = 1024 * 1024


class ChangingUpstreams:
    """Simulated vLLM servers in a thread of this process, their rates changing every 2 s; counts polls."""

    def __init__(self, count: int = SERVERS, seed: int = 8) -> None:
        template = vllm_template()
        self.servers = [SimulatedServer(template, Rate(2000.0)) for _ in range(count)]
        self.hits = [0] * count
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._changer: asyncio.Task[None] | None = None
        self._index: dict[int, int] = {}

    def start(self) -> list[str]:
        """Serve every server on its own loopback port; return the URLs."""
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    async def _start(self) -> list[str]:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        for _ in self.servers:  # one port each, as separate servers would have
            await web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024).start()
        self._changer = asyncio.create_task(self._change_rates())
        ports = [address[1] for address in self._runner.addresses]
        self._index = {port: i for i, port in enumerate(ports)}
        return [f"http://127.0.0.1:{port}/metrics" for port in ports]

    async def _metrics(self, request: web.Request) -> web.Response:
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        index = self._index[sockname[1]]
        self.hits[index] += 1
        return web.Response(body=self.servers[index].body(), headers={"Content-Type": CONTENT_TYPE})

    async def _change_rates(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            for server in self.servers:
                server.rate.set(self._random.uniform(200.0, 4000.0))

    def stop(self) -> None:
        async def stop() -> None:
            if self._changer is not None:
                self._changer.cancel()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class Reading:
    """The exporter process at one moment."""

    at: float
    rss: int
    fds: int
    cpu: float


@dataclass
class Soak:
    """What one soak saw."""

    seconds: float
    warm_up: float
    readings: list[Reading] = field(default_factory=list)
    scrapes: int = 0
    failed_scrapes: int = 0
    down_seen: int = 0
    polls: list[int] = field(default_factory=list)
    alive: bool = True

    def at(self, moment: float) -> Reading:
        """The first reading at or after ``moment`` seconds into the run."""
        return next(r for r in self.readings if r.at >= moment)


def _read(pid: int, start: float) -> Reading:
    return Reading(time.monotonic() - start, rss_bytes(pid), open_fds(pid), cpu_seconds(pid))


def _scrape(exporter: Daemon, soak: Soak) -> None:
    soak.scrapes += 1
    request = urllib.request.Request(exporter.base + "/metrics", headers={"Accept": PROMETHEUS_HEADERS["Accept"]})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        soak.failed_scrapes += 1
        return
    ups = [sample(text, "inference_server_up", server=f"server-{i:04d}") for i in range(SERVERS)]
    soak.down_seen += sum(1 for up in ups if up != 1.0)


def soak(seconds: float, warm_up: float) -> Soak:
    """Run the exporter for ``seconds`` against changing upstreams; read it every second."""
    upstreams = ChangingUpstreams()
    urls = upstreams.start()
    result = Soak(seconds, warm_up)
    try:
        with scratch() as tmp:
            config = Path(tmp) / "config.yml"
            write_config(config, urls, poll_interval=f"{POLL * 1000:g}ms", timeout="80ms")
            with Daemon(config, log=Path(tmp) / "exporter.log") as exporter:
                start = time.monotonic()
                result.readings.append(_read(exporter.pid, start))
                hits_at_start = list(upstreams.hits)
                while time.monotonic() - start < seconds:
                    time.sleep(1.0 - (time.monotonic() - start) % 1.0)  # pace: one scrape a second
                    _scrape(exporter, result)
                    result.readings.append(_read(exporter.pid, start))
                result.polls = [end - begin for end, begin in zip(upstreams.hits, hits_at_start, strict=True)]
                result.alive = exporter.alive
    finally:
        upstreams.stop()
    return result


def rows(result: Soak) -> list[Row]:
    """The soak's figures against its targets."""
    first, warm, last = result.readings[0], result.at(result.warm_up), result.readings[-1]
    growth = last.rss - warm.rss
    after = [r.fds for r in result.readings if r.at >= result.warm_up]
    quarter = max(1, len(after) // 4)
    early, late = max(after[:quarter]), max(after[-quarter:])
    span = last.at - first.at
    due = span / POLL
    name = "soak"
    return [
        Row(name, "duration, poll interval", f"{span:.0f} s at {POLL * 1000:g} ms, {SERVERS} servers + 8 GPUs"),
        Row(
            name,
            "polls per server (min–max)",
            f"{min(result.polls)}–{max(result.polls)} of {due:.0f} due",
            target="≈ due",
            met=min(result.polls) >= 0.9 * due,
        ),
        Row(name, "RSS at ready", f"{first.rss / MB:.1f} MB"),
        Row(name, f"RSS after {result.warm_up:g} s warm-up → end", f"{warm.rss / MB:.1f} → {last.rss / MB:.1f} MB"),
        Row(name, "RSS growth after warm-up", f"{growth / MB:+.2f} MB", target="< 5 MB", met=growth < 5 * MB),
        Row(
            name,
            "open fds: ready; after warm-up min–max; end",
            f"{first.fds}; {min(after)}–{max(after)}; {last.fds}",
            target="flat",
            met=late <= early + 1,
        ),
        Row(
            name,
            "scrapes failed; servers seen down",
            f"{result.failed_scrapes} of {result.scrapes}; {result.down_seen} of {result.scrapes * SERVERS}",
            target="0",
            met=result.failed_scrapes == 0 and result.alive,
        ),
        Row(name, "exporter CPU", f"{(last.cpu - first.cpu) / span * 100:.1f}% of one core"),
    ]


def run(*, full: bool = False, seconds: float | None = None) -> list[Row]:
    """Ten minutes with ``full`` (the spec), 30 s by default; the warm-up is a quarter, at most 60 s."""
    span = seconds or (SECONDS if full else 30.0)
    return rows(soak(span, min(WARM_UP, span / 4)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"how long (default {SECONDS:g})")
    args = parser.parse_args(argv)
    print(machine())
    result = run(seconds=args.seconds)
    print(table(result))
    return 0 if all(r.met is not False for r in result) else 1


if __name__ == "__main__":
    sys.exit(main())
