"""The built-in demo: the real exporter against a simulated 8× H100 node with a vLLM and an SGLang server.

Nothing here is special-cased in the exporter: the demo starts a simulated vLLM server (tensor
parallel 4, GPUs 0-3) and a simulated SGLang server (tensor parallel 2, GPUs 4-5) on loopback, leaves
GPUs 6 and 7 to no server (their cost is unattributed), drives the fake NVML's GPU load and energy
from the servers' demand, writes the same kind of config a user would, and runs the same service
and web app as production. Each server goes idle for part of every cycle of its demand, reports
prefix-cache hits and estimated FLOPs, and SGLang its GPU time per phase.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.demo.sglang import SimulatedSglang
from exporter.demo.simulator import SimulatedVllm, simulated_app
from exporter.fakes.nvml import FakeNvml, h100_node
from exporter.serve.service import gpu_source
from exporter.sources.gpu import GpuSource

MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen2.5-32B-Instruct")
NAMES = ("llama-70b", "qwen-32b")
KINDS = ("vllm", "sglang")
DemoServer = SimulatedVllm | SimulatedSglang
GPUS = ((0, 1, 2, 3), (4, 5))
"""Each server's GPUs; GPUs 6 and 7 of the node belong to no server."""


@dataclass
class DemoNode:
    """The simulated servers and GPUs of one demo, with the config that points at them."""

    servers: list[DemoServer]
    nvml: FakeNvml
    runners: list[web.AppRunner]
    config: Config

    def gpu_factory(self, config: Config) -> GpuSource:
        return gpu_source(config, self.nvml)

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def _servers(seed: int, clock: Callable[[], float]) -> list[DemoServer]:
    rng = random.Random(seed)
    start = clock()
    servers: list[DemoServer] = []
    for kind, model, gpus, flops in zip(KINDS, MODELS, GPUS, (1.4e11, 6.4e10), strict=True):
        active = rng.uniform(0.7, 0.85)
        simulated: type[DemoServer] = SimulatedVllm if kind == "vllm" else SimulatedSglang
        servers.append(
            simulated(
                model=model,
                capacity=rng.uniform(1500, 3000),
                base=rng.uniform(0.45, 0.65),
                swing=rng.uniform(0.2, 0.3),
                period=rng.uniform(300, 900),
                phase=rng.uniform(0, 6.28),
                active_share=active,
                cycle_offset=rng.uniform(0.2, 0.6) * active,
                cache_share=rng.uniform(0.2, 0.6),
                prefill_share=rng.uniform(0.2, 0.4),
                flops_per_token=flops,
                gpus=len(gpus),
                clock=clock,
                started=start,
            )
        )
    return servers


async def start_demo_node(seed: int = 1, clock: Callable[[], float] = time.monotonic) -> DemoNode:
    """Start the simulated servers on loopback and build the fake node and config."""
    servers = _servers(seed, clock)
    runners, urls = [], []
    for server in servers:
        runner = web.AppRunner(simulated_app(server), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}/metrics")
    nvml = h100_node(clock, count=8, seed=f"demo-{seed}")
    for server, gpus in zip(servers, GPUS, strict=True):
        for index in gpus:
            gpu = nvml.gpus[index]
            gpu.load = server.demand
            gpu.energy_integral = server.energy_joules(gpu.idle_watts, gpu.max_watts)
            gpu.memory_used = int(gpu.memory_total * 0.9)
    return DemoNode(servers, nvml, runners, _config(urls))


def _config(urls: list[str]) -> Config:
    return Config(
        poll_interval=1.0,
        rate_window=30.0,
        pricing=PricingConfig(
            currency="USD", gpu_hourly_cost={"default": 2.5, "NVIDIA H100 80GB HBM3": 3.0}, energy_cost_per_kwh=0.12
        ),
        gpu=GpuConfig(enabled="true", gpm=True),
        servers=tuple(
            ServerConfig(name=name, url=url, kind=kind, gpus=gpus, timeout=0.8)
            for name, url, kind, gpus in zip(NAMES, urls, KINDS, GPUS, strict=True)
        ),
    )
