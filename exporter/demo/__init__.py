"""The built-in demo: the real exporter against a simulated 8× H100 node and two simulated vLLM servers.

Nothing here is special-cased in the exporter: the demo starts two simulated vLLM servers on
loopback (tensor parallel 4 each), drives the fake NVML's GPU load from their demand, writes the
same kind of config a user would, and runs the same service and web app as production.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.demo.simulator import SimulatedVllm, simulated_app
from exporter.fakes.nvml import FakeNvml, h100_node
from exporter.serve.service import gpu_source
from exporter.sources.gpu import GpuSource

MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen2.5-72B-Instruct")


@dataclass
class DemoNode:
    """The simulated servers and GPUs of one demo, with the config that points at them."""

    servers: list[SimulatedVllm]
    nvml: FakeNvml
    runners: list[web.AppRunner]
    config: Config

    def gpu_factory(self, config: Config) -> GpuSource:
        return gpu_source(config, self.nvml)

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def _servers(seed: int, clock: Callable[[], float]) -> list[SimulatedVllm]:
    rng = random.Random(seed)
    start = clock()
    return [
        SimulatedVllm(
            model=model,
            capacity=rng.uniform(1500, 3000),
            base=rng.uniform(0.45, 0.65),
            swing=rng.uniform(0.2, 0.3),
            period=rng.uniform(300, 900),
            phase=rng.uniform(0, 6.28),
            clock=clock,
            started=start,
        )
        for model in MODELS
    ]


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
    for gpu in nvml.gpus:
        server = servers[gpu.index // 4]
        gpu.load = server.demand
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
            ServerConfig(name=name, url=url, kind="vllm", gpus=tuple(range(i * 4, i * 4 + 4)), timeout=0.8)
            for i, (name, url) in enumerate(zip(("llama-70b", "qwen-72b"), urls, strict=True))
        ),
    )
