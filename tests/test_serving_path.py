"""A scrape never waits for polling: the loops' steps are short and rendering is sliced, and what a scrape
reads is always one whole snapshot.

These tests check the structure, not the speed (the benchmarks in ``bench/scrape.py`` time it): a
probe task that takes every turn of the event loop counts what ran between two of its turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from exporter.config import Config, GpuConfig, ServerConfig
from exporter.exposition import metrics, text
from exporter.exposition.cache import GZIP_LEVEL, PLAIN_TEXT, Exposition, Variant
from exporter.exposition.demand import Demand
from exporter.fakes.nvml import h100_node
from exporter.model import Snapshot
from exporter.poll import poller as poller_module
from exporter.poll.poller import Poller
from exporter.serve.lag import LoopLag
from exporter.serve.service import Service
from exporter.serve.status import Links
from exporter.sources.gpu import GpuSource
from exporter.sources.upstream import reader as reader_module
from tests.helpers import Clock, ScriptedServer, async_wait_for, scripted_server

PROMETHEUS = Variant(openmetrics=True, gzip=True)


def body(generated: float, model: str = "m") -> str:
    labels = f'model_name="{model}"'
    buckets = "".join(
        f'vllm:time_to_first_token_seconds_bucket{{le="{le}",{labels}}} {generated}\n'
        for le in ("0.1", "0.5", "1.0", "+Inf")
    )
    return (
        f"vllm:generation_tokens_total{{{labels}}} {generated}\n"
        f"vllm:request_success_total{{{labels}}} {generated / 100}\n"
        f"{buckets}vllm:time_to_first_token_seconds_sum{{{labels}}} 1.0\n"
        f"vllm:time_to_first_token_seconds_count{{{labels}}} {generated}\n"
    )


class Probe:
    """A task that takes every turn of the event loop and counts, per turn, what ``count`` saw happen since."""

    def __init__(self) -> None:
        self.since_last = 0
        self.most = 0
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    def saw(self) -> None:
        self.since_last += 1

    async def _run(self) -> None:
        while True:
            self.most = max(self.most, self.since_last)
            self.since_last = 0
            self.turns += 1
            await asyncio.sleep(0)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Probe]:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[list[ScriptedServer]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(scripted_server(body(100.0, f"m{i}"))) for i in range(12)]


def config_for(upstreams: list[ScriptedServer], **kw: object) -> Config:
    return Config(
        poll_interval=5.0,
        rate_window=60.0,
        gpu=GpuConfig("false"),
        servers=tuple(ServerConfig(f"s{i}", srv.url, kind="vllm", timeout=5.0) for i, srv in enumerate(upstreams)),
        **kw,  # type: ignore[arg-type]
    )


# -- polling -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_bodies_of_a_poll_round_are_parsed_one_per_turn_of_the_event_loop(
    servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = Probe()
    parse = reader_module.ServerReader._parse

    def counted(self: reader_module.ServerReader, text: str) -> object:
        probe.saw()
        return parse(self, text)

    monkeypatch.setattr(reader_module.ServerReader, "_parse", counted)
    for srv in servers:
        srv.hang = True  # every answer held back, then all sent at once: they arrive together
    async with aiohttp.ClientSession() as session, probe.running():
        poller = Poller(config_for(servers), session=session, gpu_source=None, clock=Clock())
        polling = asyncio.create_task(poller.poll_servers())
        await async_wait_for(lambda: all(srv.hits == 1 for srv in servers), what="every request in")
        for srv in servers:
            srv._release.set()
        await polling
    assert all(state.status.up for state in poller._servers.values())
    assert probe.most == 1, "a scrape that arrives while bodies are parsed waits for one parse, not twelve"


@pytest.mark.asyncio
async def test_a_poll_round_of_a_small_fleet_starts_one_poll_per_turn(
    servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = Probe()
    started: list[int] = []
    poll_server = poller_module.poll_server

    async def spy(*args: Any) -> None:
        started.append(probe.turns)
        await poll_server(*args)

    monkeypatch.setattr(poller_module, "poll_server", spy)
    async with aiohttp.ClientSession() as session, probe.running():
        poller = Poller(config_for(servers), session=session, gpu_source=None, clock=Clock())
        await poller.poll_servers()
    assert len(started) == len(servers)
    assert len(set(started)) == len(started), "each poll starts (sends its request) in a turn of its own"


def test_a_large_fleet_starts_a_few_polls_per_turn_to_send_its_round_within_a_bounded_number_of_turns() -> None:
    assert [poller_module.start_batch(n) for n in (1, 64, 128, 129, 500, 1000)] == [1, 1, 1, 2, 4, 8]


@pytest.mark.asyncio
async def test_a_poll_round_cancelled_while_starting_cancels_the_polls_it_started(
    servers: list[ScriptedServer],
) -> None:
    for srv in servers:
        srv.hang = True
    async with aiohttp.ClientSession() as session:
        poller = Poller(config_for(servers), session=session, gpu_source=None, clock=Clock())
        round_ = asyncio.create_task(poller.poll_servers())
        for _ in range(5):  # five of twelve polls started
            await asyncio.sleep(0)
        started = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "poll_server"]  # type: ignore[union-attr]
        assert 0 < len(started) < len(servers), "cancelled part-way through starting"
        round_.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await round_
        await asyncio.sleep(0)
        assert all(task.done() for task in started)
        for srv in servers:
            srv._release.set()


@pytest.mark.asyncio
async def test_loops_that_run_together_publish_one_snapshot_per_round() -> None:
    config = Config(poll_interval=0.05, gpu=GpuConfig("true", fast_interval=0.05, slow_interval=60.0))
    published: list[Snapshot] = []
    rounds = 0

    async def publish(snapshot: Snapshot) -> None:
        published.append(snapshot)

    source = GpuSource(nvml=h100_node(time.monotonic))
    poller = Poller(config, session=None, gpu_source=source, publish=publish)  # type: ignore[arg-type]

    async def servers_round() -> None:
        nonlocal rounds
        rounds += 1
        await asyncio.sleep(0.01)  # the servers' answers take a while; the GPU read does not

    async def gpu_read() -> None:
        pass

    poller.poll_servers = servers_round  # type: ignore[method-assign]
    poller.poll_gpus_fast = gpu_read  # type: ignore[method-assign]
    poller.poll_gpus_slow = gpu_read  # type: ignore[method-assign]
    task = asyncio.create_task(poller.run())
    try:
        await async_wait_for(lambda: rounds >= 12, what="twelve rounds")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert rounds - 2 <= len(published) <= rounds + 1, (rounds, len(published))


# -- rendering ---------------------------------------------------------------------------------


async def big_snapshot(servers: list[ScriptedServer]) -> Snapshot:
    async with aiohttp.ClientSession() as session:
        poller = Poller(config_for(servers), session=session, gpu_source=None, clock=Clock())
        await poller.poll_servers()
        return poller.snapshot()


def test_rendering_in_slices_makes_the_same_bytes_a_slice_at_a_time() -> None:
    many = [(metrics.LOOP_ERRORS, [((f"loop-{i}",), float(i)) for i in range(2500)])]
    pieces = list(text.render_in_slices(many, openmetrics=True, lines=1000))
    assert b"".join(pieces) == text.render(many, openmetrics=True)
    assert len(pieces) == 3
    assert all(piece.count(b"\n") <= 1001 for piece in pieces)


@pytest.mark.asyncio
async def test_forms_due_are_rendered_up_front_in_slices_with_the_loop_turning_between(
    servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = await big_snapshot(servers)
    clock = Clock()
    demand: Demand[Variant] = Demand(clock)
    for _ in range(2):  # a scraper that reads Prometheus's form every second
        demand.note(PROMETHEUS)
        clock.advance(1.0)
    slices = text.render_in_slices
    monkeypatch.setattr(
        "exporter.exposition.cache.render_in_slices", lambda *a, **kw: slices(*a, **{**kw, "lines": 20})
    )
    exposition = Exposition(snapshot, demand, prepared=False)
    assert exposition.due == (PROMETHEUS,) and exposition.rendered == frozenset()
    probe = Probe()
    async with probe.running():
        await exposition.prepare()
    assert probe.turns > 10, "the event loop had turns while it rendered"
    assert exposition.rendered == {PROMETHEUS, Variant(True, False)}
    assert exposition.body(PROMETHEUS) == Exposition(snapshot).body(PROMETHEUS)


def test_gzip_in_slices_makes_the_bytes_of_one_call() -> None:
    from exporter.exposition.cache import GZIP_SLICE_BYTES, _gzip_in_slices

    data = b"".join(b"line %d of a long exposition\n" % i for i in range(40_000))
    assert len(data) > 2 * GZIP_SLICE_BYTES
    assert b"".join(_gzip_in_slices(data)) == gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


@pytest.mark.asyncio
async def test_scrapes_read_the_old_snapshot_until_the_new_one_is_rendered(servers: list[ScriptedServer]) -> None:
    clock = Clock()
    service = Service(Config(), gpu_factory=lambda _c: None, clock=clock)
    old = await big_snapshot(servers[:1])
    new = await big_snapshot(servers)
    service.publish(old)
    for _ in range(2):  # a scraper that asks for Prometheus's form every second
        service.exposition.body(PROMETHEUS)
        clock.advance(1.0)
    before = service.exposition
    publishing = asyncio.create_task(service.publish_in_slices(new))
    seen: list[Exposition] = []
    while not publishing.done():
        seen.append(service.exposition)
        await asyncio.sleep(0)
    assert len(seen) > 1 and all(exposition is before for exposition in seen[:-1])
    assert service.exposition is not before and service.exposition.snapshot.servers == new.servers
    assert PROMETHEUS in service.exposition.rendered, "rendered before it was served"


@pytest.mark.asyncio
async def test_a_publish_overtaken_by_a_later_one_is_not_served(servers: list[ScriptedServer]) -> None:
    service = Service(Config(), gpu_factory=lambda _c: None)
    slow, later = await big_snapshot(servers), await big_snapshot(servers[:2])
    service.publish(slow)
    service.exposition.body(PLAIN_TEXT)  # so that the next snapshots render up front, in slices
    publishing = asyncio.create_task(service.publish_in_slices(slow))
    await asyncio.sleep(0)
    service.publish(later)  # a reload publishes at once meanwhile
    await publishing
    assert service.exposition.snapshot.servers == later.servers


# -- the status page ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_status_page_read_on_the_loop_is_the_one_made_in_one_go(servers: list[ScriptedServer]) -> None:
    service = Service(Config(poll_interval=1.0), gpu_factory=lambda _c: None)
    service.publish(await big_snapshot(servers))
    board = service.status_page
    json_body, page = await asyncio.gather(board.read_json(), board.read_html(Links()))
    assert json_body == board.json() and page == board.html(Links())
    assert gzip.decompress(await board.read_json(compress=True)) == json_body


@pytest.mark.asyncio
async def test_a_status_reader_gets_the_snapshot_it_asked_for_even_if_a_new_one_comes_meanwhile(
    servers: list[ScriptedServer],
) -> None:
    service = Service(Config(poll_interval=1.0), gpu_factory=lambda _c: None)
    first, second = await big_snapshot(servers[:1]), await big_snapshot(servers)
    service.publish(first)
    expected = service.status_page.json()
    reading = asyncio.create_task(service.status_page.read_json())
    await asyncio.sleep(0)
    service.publish(second)
    assert await reading == expected
    assert service.status_page.json() != expected


# -- the lag gauge -----------------------------------------------------------------------------


def test_the_lag_is_the_longest_delay_within_the_window() -> None:
    lag = LoopLag(interval=1.0, window=10.0)
    assert lag.worst() == 0.0
    lag.observe(0.002, now=100.0)
    lag.observe(0.050, now=101.0)
    lag.observe(-0.001, now=102.0)  # early (the timer's resolution): no lag
    assert lag.worst() == 0.050
    lag.observe(0.001, now=110.5)
    assert lag.worst() == 0.050, "101.0 is within 10 s of 110.5"
    lag.observe(0.001, now=111.5)
    assert lag.worst() == 0.001, "older than 10 s: forgotten"


@pytest.mark.asyncio
async def test_the_lag_shows_a_step_that_held_the_event_loop() -> None:
    lag = LoopLag(interval=0.01)
    lag.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.12)  # a step that holds the loop, as a huge parse would
        await async_wait_for(lambda: lag.worst() >= 0.1, what="the lag seen")
    finally:
        lag.stop()
    assert lag.worst() < 1.0


@pytest.mark.asyncio
async def test_the_service_serves_its_event_loop_lag() -> None:
    service = Service(Config(), gpu_factory=lambda _c: None)
    service.lag.observe(0.25, asyncio.get_running_loop().time())
    service.publish(Snapshot(taken_at_unix=1.0, servers=(), gpus=(), lost_gpus=(), nvml=None))
    assert b"\ninference_exporter_event_loop_lag_seconds 0.25\n" in service.exposition.body(PLAIN_TEXT)
