"""Snapshots as the exporter makes them: the real poller over simulated vLLM servers and a fake 8-GPU node.

The poller runs in virtual time (three polls, 5 s apart) against simulated servers on loopback that
serve the recorded vLLM body with live counters, so every series the exporter serves is there: server
and model values, derived rates and costs, four full latency histograms per server, and the GPUs.
"""

from __future__ import annotations

import aiohttp

from bench.upstream import Upstream
from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.fakes.nvml import h100_node
from exporter.model import Snapshot
from exporter.poll import compose
from exporter.poll.poller import Poller
from exporter.sources.gpu import GpuSource
from tests.helpers import Clock

WALL_OFFSET = 1_700_000_000.0


def gpus_of(server: int, servers: int, gpus: int) -> tuple[int, ...]:
    """Spread servers over GPUs: several GPUs each (tensor parallel) when there are fewer servers than GPUs."""
    if servers >= gpus:
        return (server % gpus,)
    each = gpus // servers
    return tuple(range(server * each, server * each + each))


def node_config(urls: list[str], gpus: int, *, poll_interval: float = 5.0, rate_window: float = 60.0) -> Config:
    """The config a user would write for these servers on an H100 node."""
    timeout = min(2.0, poll_interval * 0.8)
    return Config(
        poll_interval=poll_interval,
        rate_window=rate_window,
        pricing=PricingConfig(gpu_hourly_cost={"default": 2.5, "NVIDIA H100 80GB HBM3": 3.0}, energy_cost_per_kwh=0.12),
        gpu=GpuConfig(enabled="true"),
        servers=tuple(
            ServerConfig(
                name=f"server-{i:03d}", url=url, kind="vllm", gpus=gpus_of(i, len(urls), gpus), timeout=timeout
            )
            for i, url in enumerate(urls)
        ),
    )


async def build_snapshot(servers: int, gpus: int = 8) -> Snapshot:
    """A snapshot of ``servers`` simulated vLLM servers on a fake node of ``gpus`` H100s."""
    return compose.compose(await build_inputs(servers, gpus))


async def build_inputs(servers: int, gpus: int = 8) -> compose.Inputs:
    """What ``compose`` reads after polling ``servers`` simulated vLLM servers on ``gpus`` H100s."""
    clock = Clock()
    upstream = Upstream(servers, rate=2000.0, clock=clock)
    urls = await upstream.start()
    nvml = h100_node(clock, count=gpus, load=lambda _t: 0.6)
    try:
        async with aiohttp.ClientSession() as session:
            poller = Poller(
                node_config(urls, gpus),
                session=session,
                gpu_source=GpuSource(nvml=nvml),
                clock=clock,
                wall=lambda: WALL_OFFSET + clock(),
            )
            for _ in range(3):
                await poller.poll_gpus_slow()
                await poller.poll_gpus_fast()
                await poller.poll_servers()
                clock.advance(5.0)
            return poller.inputs()
    finally:
        await upstream.close()
