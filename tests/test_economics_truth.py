"""Every new economic gauge against simulated servers whose true rates, cache hits, idle time and FLOPs are known.

A simulated vLLM server (GPUs 0-3: token-weight split, prefix cache, FLOPs, an idle stretch) and a
simulated SGLang server (GPUs 4-5: measured GPU time per phase, counting at completion, retractions)
run on loopback against the real poller, in virtual time, on a fake node of 8 H100s whose load and
energy follow the servers' demand; GPUs 6-7 belong to no server. At moments chosen to cover a busy
window, windows that go idle and come back, and a window that is idle throughout, each gauge must be:

- within 2 % of the truth computed from the simulators' closed forms over the same window; and
- exactly (to rounding) the documented formula applied to the exporter's own published inputs.

The idle stretches start and end on poll instants, so the idle share the polls see is the true one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.demo.sglang import SimulatedSglang
from exporter.demo.simulator import SimulatedVllm, simulated_app
from exporter.demo.workload import Workload
from exporter.fakes.nvml import h100_node
from exporter.model import ModelRates, ServerView, Snapshot
from exporter.poll.poller import Poller
from exporter.sources.gpu import GpuSource
from tests.helpers import Clock, gpu_loops_once

WINDOW = 30.0
TRUTH = 0.02
"""Relative: the simulators count at completion in whole requests, so a window's tokens are off by one request."""
EXACT = 1e-9
H100_PRICE, ENERGY_PRICE, PEAK = 3.0, 0.12, 989.4e12
IDLE_WATTS, SPAN_WATTS = 70.0, 630.0


@dataclass
class Node:
    clock: Clock
    vllm: SimulatedVllm
    sglang: SimulatedSglang
    poller: Poller


def workloads(clock: Clock) -> tuple[SimulatedVllm, SimulatedSglang]:
    # vLLM: cycles of 256 s, active for 192 of them; it starts half-way, so it is idle from 64 s to 128 s.
    vllm = SimulatedVllm(
        model="llama",
        capacity=2000.0,
        base=0.5,
        swing=0.2,
        period=256.0,
        phase=1.0,
        active_share=0.75,
        cycle_offset=0.5,
        cache_share=0.4,
        flops_per_token=1.4e11,
        gpus=4,
        clock=clock,
        started=clock.now,
    )
    # SGLang: cycles of 512 s, active for 384; from a quarter in, so idle from 256 s to 384 s.
    sglang = SimulatedSglang(
        model="qwen",
        capacity=3000.0,
        base=0.55,
        swing=0.25,
        period=512.0,
        phase=2.0,
        active_share=0.75,
        cycle_offset=0.25,
        cache_share=0.5,
        prefill_share=0.3,
        flops_per_token=6.4e10,
        gpus=2,
        clock=clock,
        started=clock.now,
    )
    return vllm, sglang


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"


@pytest_asyncio.fixture
async def node() -> AsyncIterator[Node]:
    clock = Clock()
    vllm, sglang = workloads(clock)
    nvml = h100_node(clock, count=8, seed="truth")
    for server, gpus in ((vllm, range(4)), (sglang, range(4, 6))):
        for index in gpus:
            nvml.gpus[index].load = server.demand
            nvml.gpus[index].energy_integral = server.energy_joules(IDLE_WATTS, IDLE_WATTS + SPAN_WATTS)
    (one, vllm_url), (two, sglang_url) = await serve(simulated_app(vllm)), await serve(simulated_app(sglang))
    config = Config(
        poll_interval=1.0,
        rate_window=WINDOW,
        pricing=PricingConfig(
            gpu_hourly_cost={"default": 2.5, "NVIDIA H100 80GB HBM3": H100_PRICE}, energy_cost_per_kwh=ENERGY_PRICE
        ),
        gpu=GpuConfig("true"),
        servers=(
            ServerConfig("llama", vllm_url, "vllm", (0, 1, 2, 3), timeout=0.9),
            ServerConfig("qwen", sglang_url, "sglang", (4, 5), timeout=0.9),
        ),
    )
    async with aiohttp.ClientSession() as session:
        poller = Poller(config, session=session, gpu_source=GpuSource(nvml=nvml), clock=clock, wall=lambda: 1.7e9)
        yield Node(clock, vllm, sglang, poller)
    await one.cleanup()
    await two.cleanup()


async def run_until(node: Node, elapsed: float) -> Snapshot:
    """Poll every second (GPUs, then servers) until ``elapsed`` seconds after the start, then compose."""
    start = node.vllm.started
    while True:
        await gpu_loops_once(node.poller)
        await node.poller.poll_servers()
        if node.clock.now - start >= elapsed:
            return node.poller.snapshot()
        node.clock.advance(1.0)


# -- the truth, from the closed forms over the window [now - WINDOW, now] ----------------------------


def mean(f: Callable[[float], float], now: float) -> float:
    """The true average rate of a cumulative function over the window that ends at ``now``."""
    return (f(now) - f(now - WINDOW)) / WINDOW


def idle_share(server: Workload, now: float) -> float:
    """The true idle share of the window (idle stretches start and end on whole seconds)."""
    return sum(server.is_idle(now - WINDOW + k + 0.5) for k in range(int(WINDOW))) / WINDOW


def gpu_cost(load_share: float) -> float:
    """An H100's cost per second at an average load over the window."""
    return H100_PRICE / 3600 + (IDLE_WATTS + SPAN_WATTS * load_share) * ENERGY_PRICE / 3.6e6


@dataclass
class Truth:
    cost: float
    idle: float
    power: float
    prompt: float
    generation: float
    cached: float
    flops: float

    @property
    def serving(self) -> float:
        return self.cost - self.idle


def truth(server: Workload, now: float) -> Truth:
    load = mean(server.busy_seconds, now)
    cost = server.gpus * gpu_cost(load)
    return Truth(
        cost=cost,
        idle=cost * idle_share(server, now),
        power=server.gpus * (IDLE_WATTS + SPAN_WATTS * load),
        prompt=mean(server.prompt_tokens, now),
        generation=mean(server.generation_tokens, now),
        cached=mean(server.cached_prompt_tokens, now),
        flops=mean(server.flops_per_gpu, now),
    )


def close(value: float | None, expected: float, tolerance: float = TRUTH) -> bool:
    return value is not None and value == pytest.approx(expected, rel=tolerance, abs=1e-12)


def view(snapshot: Snapshot, name: str) -> tuple[ServerView, ModelRates]:
    """The server of that name and the rates of its model (named like the server)."""
    server = next(s for s in snapshot.servers if s.name == name)
    return server, server.rates[name]


# -- the checks --------------------------------------------------------------------------------------


def check_token_weight(server: ServerView, rates: ModelRates, true: Truth) -> None:
    """vLLM: the token-weight split (weight 4, cached prompt tokens free), against the truth and the formula."""
    assert server.cost_split == "token_weight"
    assert close(server.cost_per_second, true.cost)
    units = (true.prompt - true.cached) + 4 * true.generation
    assert close(
        rates.prompt_cost_per_million_tokens, true.serving * (true.prompt - true.cached) / units / true.prompt * 1e6
    )
    assert close(rates.generation_cost_per_million_tokens, true.serving * 4 / units * 1e6)
    assert close(rates.prompt_cache_hit_ratio, true.cached / true.prompt)
    # the formula, on the exporter's own inputs
    serving = (server.cost_per_second or 0.0) - (server.idle_cost_per_second or 0.0)
    prompt, generation = rates.prompt_tokens_per_second or 0.0, rates.generation_tokens_per_second or 0.0
    computed = prompt * (1 - (rates.prompt_cache_hit_ratio or 0.0))
    unit = serving / (computed + 4 * generation)
    assert close(rates.prompt_cost_per_million_tokens, unit * computed / prompt * 1e6, EXACT)
    assert close(rates.generation_cost_per_million_tokens, unit * 4 * 1e6, EXACT)


def check_gpu_time(server: ServerView, rates: ModelRates, true: Truth, prefill_share: float) -> None:
    """SGLang: the split by measured GPU time per phase, against the truth and the formula."""
    assert server.cost_split == "gpu_time"
    assert close(server.cost_per_second, true.cost)
    assert close(rates.prompt_cost_per_million_tokens, true.serving * prefill_share / true.prompt * 1e6)
    assert close(rates.generation_cost_per_million_tokens, true.serving * (1 - prefill_share) / true.generation * 1e6)
    serving = (server.cost_per_second or 0.0) - (server.idle_cost_per_second or 0.0)
    prompt, generation = rates.prompt_tokens_per_second or 0.0, rates.generation_tokens_per_second or 0.0
    assert close(rates.prompt_cost_per_million_tokens, serving * prefill_share / prompt * 1e6, EXACT)
    assert close(rates.generation_cost_per_million_tokens, serving * (1 - prefill_share) / generation * 1e6, EXACT)


def check_energy_and_flops(server: ServerView, rates: ModelRates, true: Truth) -> None:
    assert close(rates.energy_joules_per_token, true.power / (true.prompt + true.generation))
    assert close(rates.flops_per_second_per_gpu, true.flops)
    assert close(rates.model_flops_utilization_ratio, true.flops / PEAK)
    tokens = (rates.prompt_tokens_per_second or 0.0) + (rates.generation_tokens_per_second or 0.0)
    assert close(rates.energy_joules_per_token, (server.power_watts or 0.0) / tokens, EXACT)
    assert close(rates.model_flops_utilization_ratio, (rates.flops_per_second_per_gpu or 0.0) / PEAK, EXACT)


def check_node(snapshot: Snapshot, node: Node, now: float) -> None:
    """The node: 8 H100s; 6 and 7 belong to no server and idle at 70 W; the parts add up."""
    vllm, sglang = truth(node.vllm, now), truth(node.sglang, now)
    spare = 2 * gpu_cost(0.0)
    assert close(snapshot.node_cost_per_second, vllm.cost + sglang.cost + spare)
    assert close(snapshot.unattributed_cost_per_second, spare)
    parts = [(s.cost_per_second or 0.0) for s in snapshot.servers] + [snapshot.unattributed_cost_per_second or 0.0]
    assert close(snapshot.node_cost_per_second, sum(parts), EXACT)


IDLE_SHARES = {60.0: (0.0, 0.0), 80.0: (16 / 30, 0.0), 110.0: (1.0, 0.0), 140.0: (18 / 30, 0.0), 270.0: (0.0, 14 / 30)}
"""When to look, and the idle share of each server's window then: 60 s both busy; 80 s vLLM idle since 64 s;
110 s vLLM idle throughout; 140 s vLLM busy again since 128 s; 270 s SGLang idle since 256 s."""


def check_idle(server: ServerView, share: float) -> None:
    assert server.idle_cost_per_second is not None and server.cost_per_second is not None
    assert server.idle_cost_per_second == pytest.approx(server.cost_per_second * share, rel=EXACT, abs=1e-15)


@pytest.mark.asyncio
async def test_every_new_gauge_is_within_two_percent_of_the_truth_and_exactly_the_formula(node: Node) -> None:
    for elapsed, (llama_idle, qwen_idle) in IDLE_SHARES.items():
        snapshot = await run_until(node, elapsed)
        now = node.clock.now
        llama, llama_rates = view(snapshot, "llama")
        qwen, qwen_rates = view(snapshot, "qwen")
        assert idle_share(node.vllm, now) == llama_idle and idle_share(node.sglang, now) == qwen_idle
        check_idle(llama, llama_idle)
        check_idle(qwen, qwen_idle)
        true_llama, true_qwen = truth(node.vllm, now), truth(node.sglang, now)
        if llama_idle < 1.0:
            check_token_weight(llama, llama_rates, true_llama)
            check_energy_and_flops(llama, llama_rates, true_llama)
        else:  # idle throughout: every price and per-token figure is undefined, hence absent
            assert llama_rates.prompt_cost_per_million_tokens is None
            assert llama_rates.generation_cost_per_million_tokens is None
            assert llama_rates.energy_joules_per_token is None
            assert llama_rates.prompt_cache_hit_ratio is None
            assert llama_rates.flops_per_second_per_gpu == 0.0
        check_gpu_time(qwen, qwen_rates, true_qwen, node.sglang.prefill_share)
        check_energy_and_flops(qwen, qwen_rates, true_qwen)
        check_node(snapshot, node, now)


@pytest.mark.asyncio
async def test_recomputed_and_cached_token_counters_are_the_servers_own(node: Node) -> None:
    snapshot = await run_until(node, 40.0)
    now = node.clock.now
    llama, qwen = (s.sample.models[s.name] for s in snapshot.servers if s.sample is not None)
    assert llama.prompt_cached_tokens == pytest.approx(node.vllm.cached_prompt_tokens(now))
    assert llama.recomputed_prompt_tokens is None  # vLLM has no such counter: absent, never 0
    finished = node.sglang.finished(now)
    assert qwen.prompt_cached_tokens == int(finished * 512 * 0.5)
    assert qwen.recomputed_prompt_tokens == int(0.01 * node.sglang.prompt_tokens(now))
    assert qwen.recomputed_generation_tokens == int(0.01 * node.sglang.generation_tokens(now))
