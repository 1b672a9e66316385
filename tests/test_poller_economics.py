"""The economic gauges through the real poller across a restart, a gap and an idle stretch: no NaN, no spike.

A scripted vLLM server generates 1000 tokens/s and reads 3000 prompt tokens/s (a third of them from
cache) at a steady 5e13 FLOP/s per GPU; it then restarts (every counter back to zero), is down for a
while (a gap in the polls), goes idle, and comes back. Every snapshot's new values must be absent or
finite and non-negative; the prices, while defined, must stay near their steady values (a reset or
gap counted twice, or an idle window charged to tokens, would multiply them); and an idle window
must move cost from serving to idle, not into the prices.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.fakes.nvml import h100_node
from exporter.model import ModelRates, ServerView, Snapshot
from exporter.poll.poller import Poller
from exporter.sources.gpu import GpuSource
from tests.helpers import Clock, ScriptedServer, gpu_loops_once, scripted_server

BOUND = 12 / 11 * (1 + 1e-9)
"""How far a price may rise over its steady value: a restart loses what the old process counted after the
last poll before it, at most one 5 s interval of the 60 s window (11 of 12 intervals' tokens pay for all 12).
A reset counted as a negative or a double increase, or an idle window charged to tokens, would break it."""
PRICING = PricingConfig(gpu_hourly_cost={"default": 3.0}, energy_cost_per_kwh=0.12)


def body(seconds: float, running: float) -> str:
    """The server's counters after ``seconds`` of steady work."""
    labels = 'model_name="m"'
    return (
        f"vllm:num_requests_running{{{labels}}} {running}\n"
        f"vllm:prompt_tokens_total{{{labels}}} {3000 * seconds}\n"
        f"vllm:prompt_tokens_cached_total{{{labels}}} {1000 * seconds}\n"
        f"vllm:generation_tokens_total{{{labels}}} {1000 * seconds}\n"
        f"vllm:request_success_total{{{labels}}} {4 * seconds}\n"
        f"vllm:estimated_flops_per_gpu_total{{{labels}}} {5e13 * seconds}\n"
    )


@pytest_asyncio.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as srv:
        yield srv


async def scenario(srv: ScriptedServer) -> list[tuple[str, Snapshot]]:
    """Poll every 5 s through the phases; the snapshot after each poll, with the phase it was taken in."""
    clock = Clock()
    config = Config(
        poll_interval=5.0,
        rate_window=60.0,
        pricing=PRICING,
        gpu=GpuConfig("true"),
        servers=(ServerConfig("a", srv.url, "vllm", (0, 1), timeout=1.0),),
    )
    nvml = h100_node(clock, load=lambda _t: 0.5)
    seen: list[tuple[str, Snapshot]] = []
    phases = [("steady", 24), ("restarted", 12), ("down", 4), ("back", 14), ("idle", 20), ("busy again", 14)]
    async with aiohttp.ClientSession() as session:
        poller = Poller(config, session=session, gpu_source=GpuSource(nvml=nvml), clock=clock)
        work = 0.0
        for phase, polls in phases:
            for _ in range(polls):
                if phase == "restarted" and work > 100:
                    work = 0.0  # the process restarted: counters from zero
                srv.status = 503 if phase == "down" else 200
                srv.body = body(work, 0.0 if phase == "idle" else 12.0)
                await gpu_loops_once(poller)
                await poller.poll_servers()
                seen.append((phase, poller.snapshot()))
                clock.advance(5.0)
                # the requests running at a poll go on generating until the next one; idle, nothing moves
                work += 0.0 if phase == "idle" else 5.0
    return seen


def rates_of(snapshot: Snapshot) -> tuple[ServerView, ModelRates | None]:
    view = snapshot.servers[0]
    return view, view.rates.get("m")


@pytest.mark.asyncio
async def test_no_new_gauge_is_nan_negative_or_spiking_across_restart_gap_and_idle(server: ScriptedServer) -> None:
    seen = await scenario(server)
    _, steady = rates_of(seen[23][1])
    assert steady is not None and steady.generation_cost_per_million_tokens is not None
    for phase, snapshot in seen:
        view, rates = rates_of(snapshot)
        values = [view.idle_cost_per_second, snapshot.node_cost_per_second, snapshot.unattributed_cost_per_second]
        values += [getattr(rates, f) for f in ModelRates.__dataclass_fields__] if rates is not None else []
        for value in values:
            assert value is None or (math.isfinite(value) and value >= 0), (phase, value)
        if rates is None or view.cost_per_second is None:
            assert phase == "down"
            continue
        assert view.idle_cost_per_second is None or view.idle_cost_per_second <= view.cost_per_second
        for name in ("prompt_cost_per_million_tokens", "generation_cost_per_million_tokens"):
            price, usual = getattr(rates, name), getattr(steady, name)
            assert price is None or price <= usual * BOUND, (phase, name, price, usual)
        assert (
            rates.model_flops_utilization_ratio is None or rates.model_flops_utilization_ratio <= 5e13 / 989.4e12 * 1.05
        )


@pytest.mark.asyncio
async def test_an_idle_window_moves_cost_from_serving_to_idle(server: ScriptedServer) -> None:
    seen = await scenario(server)
    idle = [snapshot for phase, snapshot in seen if phase == "idle"]
    view, rates = rates_of(idle[-1])  # 20 polls (100 s) idle: the whole 60 s window
    assert rates is not None
    assert view.idle_cost_per_second == pytest.approx(view.cost_per_second)
    assert rates.prompt_cost_per_million_tokens is None and rates.generation_cost_per_million_tokens is None
    assert rates.energy_joules_per_token is None
    view, rates = rates_of(idle[5])  # 25 s idle in the 60 s window: 5 intervals of 12
    assert view.idle_cost_per_second == pytest.approx(view.cost_per_second * 25 / 60)
    _, steady = rates_of(seen[23][1])
    assert rates is not None and steady is not None
    # the tokens of the window's busy part pay only for the busy part: the prices do not move
    assert rates.generation_cost_per_million_tokens == pytest.approx(steady.generation_cost_per_million_tokens)
