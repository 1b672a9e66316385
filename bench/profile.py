"""Profile the exporter's hot paths with pyinstrument, to see where time goes before optimizing.

    python -m bench.profile                # a poll round of 64 servers, and publishing + rendering its snapshot
    python -m bench.profile --servers 8 --rounds 200 --html profile.html

It runs the real poller (real HTTP on loopback, ``kind: auto``) against simulated vLLM servers in
this process, in virtual time, and prints pyinstrument's call tree of ``--rounds`` poll rounds and
as many publishes with a Prometheus-style scrape after each. For the daemon as a whole, sample the
running process instead: ``py-spy record --gil --pid PID`` (``bench/daemon.py`` starts one).
Needs ``pip install '.[bench]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

import aiohttp

from bench.snapshots import WALL_OFFSET, node_config
from bench.upstream import Upstream
from exporter import logging as exporter_logging
from exporter.exposition.cache import Variant
from exporter.fakes.nvml import h100_node
from exporter.poll.poller import Poller
from exporter.serve.service import Service
from exporter.sources.gpu import GpuSource
from tests.helpers import Clock

PROMETHEUS = Variant(openmetrics=True, gzip=True)


async def profile(servers: int, rounds: int) -> object:
    """Poll and publish ``rounds`` times under the profiler; return the profiler."""
    from pyinstrument import Profiler

    clock = Clock()
    upstream = Upstream(servers, clock=clock, engines=1)
    urls = await upstream.start()
    config = node_config(urls, 8)
    config = dataclasses.replace(config, servers=tuple(dataclasses.replace(s, kind="auto") for s in config.servers))
    service = Service(config, gpu_factory=lambda _config: None, clock=clock)
    profiler = Profiler(async_mode="enabled")
    try:
        async with aiohttp.ClientSession() as session:
            poller = Poller(
                config,
                session=session,
                gpu_source=GpuSource(nvml=h100_node(clock, count=8, load=lambda _t: 0.6)),
                clock=clock,
                wall=lambda: WALL_OFFSET + clock(),
            )
            await poller.poll_gpus_slow()
            await poller.poll_gpus_fast()
            await poller.poll_servers()
            profiler.start()
            for _ in range(rounds):
                clock.advance(1.0)
                await poller.poll_gpus_fast()
                await poller.poll_servers()
                service.publish(poller.snapshot())
                service.exposition.body(PROMETHEUS)
            profiler.stop()
    finally:
        await upstream.close()
    return profiler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--html", metavar="PATH", help="also write pyinstrument's HTML view here")
    args = parser.parse_args()
    exporter_logging.configure("warn")
    profiler = asyncio.run(profile(args.servers, args.rounds))
    print(profiler.output_text(unicode=True, color=False))  # type: ignore[attr-defined]
    if args.html:
        with open(args.html, "w", encoding="utf-8") as file:
            file.write(profiler.output_html())  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
