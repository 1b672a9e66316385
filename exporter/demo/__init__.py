"""The built-in demo: the real exporter against a simulated node of 10 H100s, with vLLM, SGLang and a
disaggregated prefill/decode deployment.

Nothing here is special-cased in the exporter: the demo starts, on loopback, a simulated vLLM server
(tensor parallel 4, GPUs 0-3), a simulated SGLang server (tensor parallel 2, GPUs 4-5), and a
disaggregated deployment of one model (``disaggregated``): a Dynamo frontend, a prefill server on
GPU 6 and two decode servers on GPUs 7 and 8. GPU 9 belongs to no server (its cost is
unattributed). It drives the fake NVML's GPU load and energy from the servers' demand, writes the
same kind of config a user would, and runs the same service and web app as production. Each server
goes idle for part of every cycle of its demand, reports prefix-cache hits and estimated FLOPs, and
SGLang its GPU time per phase.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from aiohttp import web

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.config.model import Role
from exporter.demo import disaggregated
from exporter.demo.sglang import SimulatedSglang
from exporter.demo.simulator import Simulated, SimulatedVllm, simulated_app
from exporter.demo.workload import Workload
from exporter.fakes.nvml import FakeNvml, h100_node
from exporter.serve.service import gpu_source
from exporter.sources.gpu import GpuSource

MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen2.5-32B-Instruct")
NAMES = ("llama-70b", "qwen-32b")
KINDS = ("vllm", "sglang")
DemoServer = SimulatedVllm | SimulatedSglang
GPUS = ((0, 1, 2, 3), (4, 5))
"""Each standalone server's GPUs."""
GPU_COUNT = 10
"""GPUs of the node: the standalone servers', the deployment's 6-8, and GPU 9 that no server claims."""
DEPLOYMENT = "llama-8b-pd"
PD_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
PD_SERVERS: tuple[tuple[str, str, Role, tuple[int, ...]], ...] = (  # name, kind, role, GPUs
    ("llama-8b-frontend", "dynamo", "frontend", ()),
    ("llama-8b-prefill-0", "vllm", "prefill", (6,)),
    ("llama-8b-decode-0", "vllm", "decode", (7,)),
    ("llama-8b-decode-1", "vllm", "decode", (8,)),
)
"""The disaggregated deployment, in the order of ``disaggregated.servers``."""


@dataclass
class DemoNode:
    """The simulated servers and GPUs of one demo, with the config that points at them."""

    servers: list[Simulated]
    """Every simulated server, in the order of the configuration's servers."""
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
        simulated: type[DemoServer] = SimulatedVllm if kind == "vllm" else SimulatedSglang
        load = _random_load(rng, capacity=(1500, 3000), active=(0.7, 0.85), cache=(0.2, 0.6))
        servers.append(
            simulated(
                model=model,
                **load,
                prefill_share=rng.uniform(0.2, 0.4),
                flops_per_token=flops,
                gpus=len(gpus),
                clock=clock,
                started=start,
            )
        )
    return servers


class _Load(TypedDict):
    """The random part of a ``Workload``."""

    capacity: float
    base: float
    swing: float
    period: float
    phase: float
    active_share: float
    cycle_offset: float
    cache_share: float


def _random_load(
    rng: random.Random, *, capacity: tuple[float, float], active: tuple[float, float], cache: tuple[float, float]
) -> _Load:
    """A server's demand curve drawn from ``rng``: its capacity, swing, period, idle share and cache hits."""
    share = rng.uniform(*active)
    return _Load(
        capacity=rng.uniform(*capacity),
        base=rng.uniform(0.45, 0.65),
        swing=rng.uniform(0.2, 0.3),
        period=rng.uniform(300, 900),
        phase=rng.uniform(0, 6.28),
        active_share=share,
        cycle_offset=rng.uniform(0.2, 0.6) * share,
        cache_share=rng.uniform(*cache),
    )


def _deployment(seed: int, clock: Callable[[], float]) -> Workload:
    """The disaggregated deployment's stream of requests (its GPUs: one per server)."""
    rng = random.Random(seed * 7919)
    load = _random_load(rng, capacity=(2500, 4000), active=(0.75, 0.9), cache=(0.1, 0.4))
    return Workload(
        model=PD_MODEL,
        **load,
        flops_per_token=1.6e10,
        gpus=1,
        clock=clock,
        started=clock(),
    )


async def start_demo_node(seed: int = 1, clock: Callable[[], float] = time.monotonic) -> DemoNode:
    """Start the simulated servers on loopback and build the fake node and config."""
    standalone = _servers(seed, clock)
    workload = _deployment(seed, clock)
    servers: list[Simulated] = [*standalone, *disaggregated.servers(workload)]
    runners, urls = [], []
    for server in servers:
        runner = web.AppRunner(simulated_app(server), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}/metrics")
    nvml = h100_node(clock, count=GPU_COUNT, seed=f"demo-{seed}")
    loads: list[tuple[Workload, tuple[int, ...]]] = [
        *zip(standalone, GPUS, strict=True),
        *((workload, gpus) for *_, gpus in PD_SERVERS),
    ]
    for load, gpus in loads:
        for index in gpus:
            gpu = nvml.gpus[index]
            gpu.load = load.demand
            gpu.energy_integral = load.energy_joules(gpu.idle_watts, gpu.max_watts)
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
        servers=(
            *(
                ServerConfig(name=name, url=url, kind=kind, gpus=gpus, timeout=0.8)
                for name, url, kind, gpus in zip(NAMES, urls[: len(NAMES)], KINDS, GPUS, strict=True)
            ),
            *(
                ServerConfig(name=name, url=url, kind=kind, gpus=gpus, timeout=0.8, deployment=DEPLOYMENT, role=role)
                for (name, kind, role, gpus), url in zip(PD_SERVERS, urls[len(NAMES) :], strict=True)
            ),
        ),
    )
