"""Poll every source on its interval, isolate failures, derive, and publish immutable snapshots.

Each server poll runs concurrently with the others, bounded by its own timeout; NVML runs in a
worker thread. A failing source never raises out of here: it becomes ``up 0`` with its reason, and
the other sources carry on. After each round the poller composes a ``Snapshot`` and hands it to
``publish`` (which renders it once for all scrapes until the next one).

Clocks are injected: ``clock`` (monotonic seconds, for rates) and ``wall`` (unix seconds, for
timestamps), so tests drive ``poll_servers``/``poll_gpus`` in virtual time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import structlog

from exporter import derive
from exporter.config import Config, ServerConfig
from exporter.model import (
    GpuReading,
    GpuShare,
    GpuView,
    ServerSample,
    ServerView,
    Snapshot,
    SourceStatus,
)
from exporter.sources.gpu import GpuSource, NvmlUnavailable
from exporter.sources.scrape import ScrapeError, ServerScraper

NOT_POLLED = SourceStatus(up=False, duration_seconds=0.0, last_success_unix=None, error="not polled yet")
NVML_RETRY_SECONDS = 30.0
NVML_TIMEOUT_SECONDS = 5.0

log = structlog.get_logger("exporter.poller")


@dataclass
class _ServerState:
    scraper: ServerScraper
    status: SourceStatus = NOT_POLLED
    sample: ServerSample | None = None
    windows: dict[str, derive.ModelWindows] = field(default_factory=dict)
    polled: bool = False


@dataclass
class _GpuState:
    source: GpuSource
    started: bool = False
    status: SourceStatus = NOT_POLLED
    reading: GpuReading | None = None
    driver_version: str = ""
    energy: dict[str, derive.CounterWindow] = field(default_factory=dict)
    integrated: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """uuid → (monotonic time, watts, joules) for GPUs whose NVML lacks the energy counter."""
    next_start: float = 0.0
    busy: bool = False
    polled: bool = False


class Poller:
    """Owns the sources' state; ``run`` polls forever, ``snapshot`` composes the current state."""

    def __init__(
        self,
        config: Config,
        *,
        session: aiohttp.ClientSession,
        gpu_source: GpuSource | None,
        publish: Callable[[Snapshot], None] = lambda _s: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._clock, self._wall, self._publish = clock, wall, publish
        self._servers = {s.name: _ServerState(self._scraper(s, session)) for s in config.servers}
        self._gpu = _GpuState(gpu_source) if gpu_source is not None else None
        self.missed_polls = 0

    def _scraper(self, server: ServerConfig, session: aiohttp.ClientSession) -> ServerScraper:
        return ServerScraper(
            server, session, max_body_bytes=self.config.max_body_bytes, max_series=self.config.max_series_per_server
        )

    # -- loops ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll servers and GPUs on their intervals until cancelled."""
        loops = [self._every(self.config.poll_interval, self.poll_servers)]
        if self._gpu is not None:
            loops.append(self._every(self.config.poll_interval, self.poll_gpus))
        await asyncio.gather(*loops)

    async def _every(self, interval: float, poll: Callable[[], Awaitable[None]]) -> None:
        due = self._clock()
        while True:
            await poll()
            due += interval
            now = self._clock()
            while due <= now:
                due += interval
                self.missed_polls += 1
            await asyncio.sleep(due - now)

    # -- servers -------------------------------------------------------------------------------

    async def poll_servers(self) -> None:
        """Poll every server once, concurrently, then publish."""
        await asyncio.gather(*(self._poll_server(state) for state in self._servers.values()))
        self._publish(self.snapshot())

    async def _poll_server(self, state: _ServerState) -> None:
        started = self._clock()
        try:
            sample = await state.scraper.poll()
        except ScrapeError as exc:
            self._server_failed(state, str(exc), self._clock() - started)
        except Exception as exc:  # an adapter bug must not stop the others
            log.exception("server_poll_crashed", server=state.scraper.config.name)
            self._server_failed(state, f"internal error: {exc!r}", self._clock() - started)
        else:
            self._server_succeeded(state, sample, self._clock(), started)
        state.polled = True

    def _server_failed(self, state: _ServerState, error: str, duration: float) -> None:
        name = state.scraper.config.name
        if state.status.up or not state.polled:
            log.warning("server_down", server=name, error=error)
        else:
            log.debug("server_still_down", server=name, error=error)
        state.status = SourceStatus(False, duration, state.status.last_success_unix, error)
        state.sample = None

    def _server_succeeded(self, state: _ServerState, sample: ServerSample, now: float, started: float) -> None:
        if not state.status.up:
            log.info("server_up", server=state.scraper.config.name, kind=sample.kind, models=len(sample.models))
        restarted = _restarted(state.sample, sample)
        span = self.config.rate_window
        state.windows = {
            model: derive.observe_model(
                state.windows.get(model, derive.ModelWindows()), now, model_sample, span, restarted
            )
            for model, model_sample in sample.models.items()
        }
        state.sample = sample
        state.status = SourceStatus(True, now - started, self._wall(), None)

    # -- GPUs ----------------------------------------------------------------------------------

    async def poll_gpus(self) -> None:
        """Read every GPU once (starting NVML if needed), then publish."""
        gpu = self._gpu
        if gpu is None or gpu.busy:
            return
        started = self._clock()
        try:
            gpu.busy = True
            reading = await self._read_gpus(gpu)
        except NvmlUnavailable as exc:
            self._gpu_failed(gpu, str(exc), self._clock() - started)
        else:
            self._gpu_succeeded(gpu, reading, self._clock(), started)
        finally:
            gpu.busy = False
            gpu.polled = True
        self._publish(self.snapshot())

    async def _read_gpus(self, gpu: _GpuState) -> GpuReading:
        if not gpu.started:
            if self._clock() < gpu.next_start:
                raise NvmlUnavailable(gpu.status.error or "NVML is not available")
            gpu.next_start = self._clock() + NVML_RETRY_SECONDS
            gpu.driver_version = await asyncio.to_thread(gpu.source.start)
            gpu.started = True
        task = asyncio.ensure_future(asyncio.to_thread(gpu.source.read))
        try:
            return await asyncio.wait_for(asyncio.shield(task), NVML_TIMEOUT_SECONDS)
        except TimeoutError:
            raise NvmlUnavailable(f"NVML did not answer within {NVML_TIMEOUT_SECONDS:g}s") from None

    def _gpu_failed(self, gpu: _GpuState, error: str, duration: float) -> None:
        if gpu.status.up or not gpu.polled:
            log.warning("nvml_down", error=error)
        gpu.status = SourceStatus(False, duration, gpu.status.last_success_unix, error)
        gpu.reading = None

    def _gpu_succeeded(self, gpu: _GpuState, reading: GpuReading, now: float, started: float) -> None:
        if not gpu.status.up:
            log.info("nvml_up", gpus=len(reading.gpus), driver_version=reading.driver_version)
        newly_lost = {u for _, u in reading.lost} - {u for _, u in (gpu.reading.lost if gpu.reading else ())}
        for uuid in newly_lost:
            log.warning("gpu_lost", uuid=uuid)
        for sample in reading.gpus:
            energy = self._energy(gpu, sample.uuid, sample.energy_joules, sample.power_watts, now)
            gpu.energy[sample.uuid] = derive.observe(
                gpu.energy.get(sample.uuid, derive.EMPTY_WINDOW), now, energy, self.config.rate_window
            )
        gpu.reading = reading
        gpu.status = SourceStatus(True, now - started, self._wall(), None)

    def _energy(
        self, gpu: _GpuState, uuid: str, counter: float | None, watts: float | None, now: float
    ) -> float | None:
        """NVML's energy counter, or power integrated over time where the GPU lacks it."""
        if counter is not None or watts is None:
            return counter
        last_t, last_w, joules = gpu.integrated.get(uuid, (now, watts, 0.0))
        joules = derive.integrate_power(joules, last_w, watts, now - last_t)
        gpu.integrated[uuid] = (now, watts, joules)
        return joules

    # -- snapshot ------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Compose the current state: attribution, rates, cost and energy, per server and GPU."""
        reading = self._gpu.reading if self._gpu is not None else None
        shares = self._shares(reading)
        servers = tuple(self._server_view(name, state, shares[name], reading) for name, state in self._servers.items())
        return Snapshot(
            taken_at_unix=self._wall(),
            servers=servers,
            gpus=self._gpu_views(reading, servers),
            lost_gpus=reading.lost if reading is not None else (),
            nvml=self._gpu.status if self._gpu is not None else None,
            driver_version=reading.driver_version if reading is not None else "",
            currency=self.config.pricing.currency,
            ready=self.ready,
        )

    @property
    def ready(self) -> bool:
        """True once every source has been polled at least once."""
        gpu_done = self._gpu is None or self._gpu.polled
        return gpu_done and all(state.polled for state in self._servers.values())

    def _shares(self, reading: GpuReading | None) -> dict[str, tuple[GpuShare, ...]]:
        known = {g.index: g.uuid for g in reading.gpus} if reading is not None else {}
        by_uuid = {uuid: index for index, uuid in known.items()}
        resolved = {
            name: [_resolve(ref, known, by_uuid) for ref in state.scraper.config.gpus]
            for name, state in self._servers.items()
        }
        weights = derive.equal_shares({name: [_key(i, u) for i, u in refs] for name, refs in resolved.items()})
        return {
            name: tuple(GpuShare(i, u, weights[name][_key(i, u)]) for i, u in refs) for name, refs in resolved.items()
        }

    def _server_view(
        self, name: str, state: _ServerState, shares: tuple[GpuShare, ...], reading: GpuReading | None
    ) -> ServerView:
        inputs = [self._cost_input(share, reading) for share in shares]
        economics = derive.ServerEconomics(
            gpu_count=len(shares),
            cost_per_second=derive.server_cost_per_second(inputs, self.config.pricing.energy_cost_per_kwh)
            if shares
            else None,
            power_watts=derive.server_power(inputs) if shares else None,
        )
        up = state.sample is not None
        return ServerView(
            name=name,
            status=state.status,
            sample=state.sample,
            gpus=shares,
            rates=derive.model_rates(state.windows, economics) if up else {},
            cost_per_second=economics.cost_per_second,
            power_watts=economics.power_watts,
        )

    def _cost_input(self, share: GpuShare, reading: GpuReading | None) -> derive.GpuCostInput:
        name = next((g.name for g in reading.gpus if g.uuid == share.uuid), None) if reading else None
        window = self._gpu.energy.get(share.uuid) if self._gpu is not None and reading is not None else None
        power = derive.rate(window) if window is not None and name is not None else None
        return derive.GpuCostInput(share, derive.hourly_cost(name, self.config.pricing.gpu_hourly_cost), power)

    def _gpu_views(self, reading: GpuReading | None, servers: tuple[ServerView, ...]) -> tuple[GpuView, ...]:
        if reading is None or self._gpu is None:
            return ()
        per_gpu = derive.gpu_generation_rates((_total_generation(s), s.gpus) for s in servers)
        claimed = {share.uuid for s in servers for share in s.gpus}
        prices = self.config.pricing.gpu_hourly_cost
        views = []
        for sample in reading.gpus:
            views.append(
                GpuView(
                    sample=sample,
                    hourly_cost=derive.hourly_cost(sample.name, prices),
                    generation_tokens_per_second=per_gpu.get(sample.uuid, None if sample.uuid in claimed else 0.0),
                    energy_joules=_last_energy(self._gpu, sample.uuid, sample.energy_joules),
                )
            )
        return tuple(views)


def _resolve(ref: int | str, known: dict[int, str], by_uuid: dict[str, int]) -> tuple[int, str]:
    if isinstance(ref, int):
        return ref, known.get(ref, "")
    return by_uuid.get(ref, -1), ref


def _key(index: int, uuid: str) -> str:
    return uuid or f"index:{index}"


def _restarted(previous: ServerSample | None, current: ServerSample) -> bool | None:
    """True/False when both samples carry the process start time, else ``None`` (infer from counters)."""
    if previous is None or previous.process_start_time_seconds is None:
        return None
    if current.process_start_time_seconds is None:
        return None
    return current.process_start_time_seconds != previous.process_start_time_seconds


def _total_generation(server: ServerView) -> float | None:
    rates = [r.generation_tokens_per_second for r in server.rates.values()]
    known = [r for r in rates if r is not None]
    return sum(known) if known else None


def _last_energy(gpu: _GpuState, uuid: str, counter: float | None) -> float | None:
    if counter is not None:
        return counter
    integrated = gpu.integrated.get(uuid)
    return integrated[2] if integrated is not None else None
