"""The poller in virtual time against real loopback servers and the fake NVML."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.fakes.nvml import h100_node, no_nvml
from exporter.model import Snapshot
from exporter.poll.poller import Poller
from exporter.sources.gpu import GpuSource
from tests.helpers import Clock, ScriptedServer, gpu_loops_once, scripted_server

PRICES = PricingConfig(gpu_hourly_cost={"default": 2.0, "NVIDIA H100 80GB HBM3": 3.0}, energy_cost_per_kwh=0.12)


def vllm_body(generated: float, requests: float, model: str = "m") -> str:
    labels = f'model_name="{model}"'
    return (
        f"vllm:generation_tokens_total{{{labels}}} {generated}\n"
        f"vllm:prompt_tokens_total{{{labels}}} {generated * 2}\n"
        f"vllm:request_success_total{{{labels}}} {requests}\n"
        f"vllm:num_requests_running{{{labels}}} 3\n"
    )


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def config(*servers: ServerConfig, **kw: object) -> Config:
    return Config(poll_interval=5.0, rate_window=60.0, pricing=PRICES, gpu=GpuConfig("true"), servers=servers, **kw)  # type: ignore[arg-type]


def server(name: str, url: str, gpus: tuple[int | str, ...] = (0, 1, 2, 3), timeout: float = 1.0) -> ServerConfig:
    return ServerConfig(name=name, url=url, kind="vllm", gpus=gpus, timeout=timeout)


def model(snapshot: Snapshot, server_name: str, model_name: str = "m"):  # type: ignore[no-untyped-def]
    view = next(s for s in snapshot.servers if s.name == server_name)
    return view, view.rates.get(model_name)


async def run_rounds(poller: Poller, clock: Clock, srv: ScriptedServer, rate: float, rounds: int) -> None:
    """Poll ``rounds`` times, 5 virtual seconds apart, with a counter growing at ``rate`` tokens/s."""
    start = clock.now
    for _ in range(rounds):
        elapsed = clock.now - start
        srv.body = vllm_body(elapsed * rate, elapsed * rate / 100)
        await gpu_loops_once(poller)
        await poller.poll_servers()
        clock.advance(5.0)


@pytest.mark.asyncio
async def test_rates_cost_and_energy_follow_the_formulas(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    nvml = h100_node(clock, load=lambda _t: 0.5)
    async with scripted_server() as srv:
        poller = Poller(
            config(server("a", srv.url)),
            session=session,
            gpu_source=GpuSource(nvml=nvml),
            clock=clock,
            wall=lambda: 1.7e9,
        )
        await run_rounds(poller, clock, srv, rate=1000.0, rounds=14)
        view, rates = model(poller.snapshot(), "a")
    assert rates.generation_tokens_per_second == pytest.approx(1000.0)
    assert rates.prompt_tokens_per_second == pytest.approx(2000.0)
    assert rates.requests_per_second == pytest.approx(10.0)
    assert rates.generation_tokens_per_second_per_gpu == pytest.approx(250.0)
    power = 4 * (70 + 630 * 0.5)
    cost = 4 * 3.0 / 3600 + power * 0.12 / 3.6e6
    assert view.power_watts == pytest.approx(power)
    assert rates.cost_per_request == pytest.approx(cost / 10.0)
    assert rates.cost_per_million_generation_tokens == pytest.approx(cost / 1000.0 * 1e6)
    assert rates.energy_joules_per_generation_token == pytest.approx(power / 1000.0)


@pytest.mark.asyncio
async def test_per_gpu_attributed_rates_sum_to_the_server_totals(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with scripted_server() as one, scripted_server() as two:
        poller = Poller(
            config(server("a", one.url, (0, 1, 2, 3)), server("b", two.url, (4, 5))),
            session=session,
            gpu_source=GpuSource(nvml=h100_node(clock)),
            clock=clock,
        )
        for t in range(0, 30, 5):
            one.body, two.body = vllm_body(t * 400.0, t), vllm_body(t * 100.0, t)
            await gpu_loops_once(poller)
            await poller.poll_servers()
            clock.advance(5.0)
        snapshot = poller.snapshot()
    per_gpu = {g.sample.index: g.generation_tokens_per_second for g in snapshot.gpus}
    assert per_gpu == {0: 100.0, 1: 100.0, 2: 100.0, 3: 100.0, 4: 50.0, 5: 50.0, 6: 0.0, 7: 0.0}
    assert sum(v or 0 for v in per_gpu.values()) == pytest.approx(400.0 + 100.0)


@pytest.mark.asyncio
async def test_a_down_server_drops_its_series_and_others_keep_theirs(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with scripted_server() as good, scripted_server() as bad:
        poller = Poller(
            config(server("good", good.url), server("bad", bad.url)), session=session, gpu_source=None, clock=clock
        )
        good.body = bad.body = vllm_body(100, 1)
        await poller.poll_servers()
        bad.status = 500
        await poller.poll_servers()
        snapshot = poller.snapshot()
    good_view, _ = model(snapshot, "good")
    bad_view, bad_rates = model(snapshot, "bad")
    assert good_view.status.up and good_view.sample is not None
    assert not bad_view.status.up
    assert bad_view.sample is None and bad_rates is None
    assert bad_view.status.error == f"HTTP 500 from {bad.url}"
    assert bad_view.status.last_success_unix is not None


@pytest.mark.asyncio
async def test_a_server_restart_never_gives_a_negative_or_spiking_rate(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with scripted_server() as srv:
        poller = Poller(config(server("a", srv.url)), session=session, gpu_source=None, clock=clock)
        seen = []
        for t in range(0, 120, 5):
            counter = 100.0 * (t if t < 60 else t - 62)  # restart at t=62: counter starts again from zero
            srv.body = vllm_body(counter, counter / 100)
            await poller.poll_servers()
            _, rates = model(poller.snapshot(), "a")
            if rates and rates.generation_tokens_per_second is not None:
                seen.append(rates.generation_tokens_per_second)
            clock.advance(5.0)
    assert seen and all(0 <= r <= 100.0 + 1e-9 for r in seen)


@pytest.mark.asyncio
async def test_ready_becomes_true_after_every_source_was_polled_once(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with scripted_server(vllm_body(1, 1)) as srv:
        poller = Poller(
            config(server("a", srv.url)), session=session, gpu_source=GpuSource(nvml=h100_node(clock)), clock=clock
        )
        assert not poller.snapshot().ready
        await poller.poll_servers()
        assert not poller.snapshot().ready
        await gpu_loops_once(poller)
        assert poller.snapshot().ready


@pytest.mark.asyncio
async def test_without_nvml_the_gpu_source_is_down_and_servers_still_work(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with scripted_server() as srv:
        poller = Poller(
            config(server("a", srv.url)), session=session, gpu_source=GpuSource(nvml=no_nvml(clock)), clock=clock
        )
        await run_rounds(poller, clock, srv, rate=50.0, rounds=3)
        snapshot = poller.snapshot()
    assert snapshot.nvml is not None and not snapshot.nvml.up
    assert "NVML Shared Library Not Found" in (snapshot.nvml.error or "")
    assert snapshot.gpus == ()
    view, rates = model(snapshot, "a")
    assert rates.generation_tokens_per_second == pytest.approx(50.0)
    assert view.cost_per_second == pytest.approx(4 * 2.0 / 3600)  # the default price, no electricity


@pytest.mark.asyncio
async def test_a_lost_gpu_drops_out_of_the_gpu_views(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=2)
    poller = Poller(config(), session=session, gpu_source=GpuSource(nvml=nvml), clock=clock)
    await gpu_loops_once(poller)
    nvml.gpus[1].lost = True
    await gpu_loops_once(poller)
    snapshot = poller.snapshot()
    assert [g.sample.index for g in snapshot.gpus] == [0]
    assert snapshot.lost_gpus == ((1, nvml.gpus[1].uuid),)


@pytest.mark.asyncio
async def test_a_gpu_shared_by_two_servers_is_split_between_them(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with scripted_server(vllm_body(0, 0)) as one, scripted_server(vllm_body(0, 0)) as two:
        poller = Poller(
            config(server("a", one.url, (0,)), server("b", two.url, (0, 1))),
            session=session,
            gpu_source=GpuSource(nvml=h100_node(clock, count=2)),
            clock=clock,
        )
        await gpu_loops_once(poller)
        await poller.poll_servers()
        snapshot = poller.snapshot()
    a, _ = model(snapshot, "a")
    b, _ = model(snapshot, "b")
    assert [s.weight for s in a.gpus] == [0.5]
    assert sorted(s.weight for s in b.gpus) == [0.5, 1.0]
    assert (a.cost_per_second or 0) + (b.cost_per_second or 0) == pytest.approx(2 * 3.0 / 3600)
