"""Poll every source on its interval, isolate failures, derive, and publish immutable snapshots.

Each server poll runs concurrently with the others, bounded by its own timeout. The GPUs have two
loops of their own (``gpu_poller``: fast values each second, slow ones every few seconds, NVML in
worker threads), and the kubelet a third where Kubernetes attribution is on. A failing source never
raises out of here: it becomes ``up 0`` with its reason, and the other sources carry on. After each
round the poller composes a ``Snapshot`` (attributing GPUs to servers through ``attribution``) and
hands it to ``publish`` (which renders it once for all scrapes until the next one).

Clocks are injected: ``clock`` (monotonic seconds, for rates) and ``wall`` (unix seconds, for
timestamps), so tests drive ``poll_servers``/``poll_gpus`` in virtual time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import structlog

from exporter import derive
from exporter.attribution.attributor import Attributor
from exporter.attribution.resolve import Attribution
from exporter.attribution.resolve import shares as attributed_shares
from exporter.config import Config, ServerConfig
from exporter.gpu_poller import GpuPoller
from exporter.model import (
    NOT_POLLED,
    GpuReading,
    GpuShare,
    GpuView,
    ServerSample,
    ServerView,
    Snapshot,
    SourceStatus,
)
from exporter.sources.gpu import GpuSource
from exporter.sources.scrape import ScrapeError, ServerScraper

log = structlog.get_logger("exporter.poller")


@dataclass
class _ServerState:
    scraper: ServerScraper
    status: SourceStatus = NOT_POLLED
    sample: ServerSample | None = None
    windows: dict[str, derive.ModelWindows] = field(default_factory=dict)
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
        self._session = session
        self._servers = {s.name: _ServerState(self._scraper(s, session)) for s in config.servers}
        self._gpu = GpuPoller(gpu_source, config, clock=clock, wall=wall) if gpu_source is not None else None
        self._attributor = Attributor(config, wall=wall)
        self.missed_polls = 0

    def _scraper(self, server: ServerConfig, session: aiohttp.ClientSession) -> ServerScraper:
        return ServerScraper(
            server, session, max_body_bytes=self.config.max_body_bytes, max_series=self.config.max_series_per_server
        )

    # -- loops ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll servers, GPUs (fast and slow) and the kubelet on their intervals until cancelled."""
        loops = [self._every(self.config.poll_interval, self.poll_servers)]
        if self._gpu is not None:
            loops.append(self._every(self.config.gpu.fast_interval, self.poll_gpus_fast))
            loops.append(self._every(self.config.gpu.slow_interval, self.poll_gpus_slow))
        if self._attributor.wants_kubelet:
            loops.append(self._every(self.config.kubernetes.refresh_interval, self.refresh_kubelet))
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
        """Read every GPU once, slow values and fast (starting NVML if needed), refresh attribution, publish."""
        if self._gpu is None:
            return
        await self._refresh_local(await self._gpu.poll_slow())
        await self._gpu.poll_fast()
        self._publish(self.snapshot())

    async def poll_gpus_fast(self) -> None:
        """The fast GPU loop: utilization, power, energy, clocks; publish."""
        if self._gpu is not None and await self._gpu.poll_fast():
            self._publish(self.snapshot())

    async def poll_gpus_slow(self) -> None:
        """The slow GPU loop: processes, ECC, power limit, MIG layout; then local attribution."""
        if self._gpu is not None:
            await self._refresh_local(await self._gpu.poll_slow())

    async def _refresh_local(self, reading: GpuReading | None) -> None:
        if reading is None or not self._attributor.wants_local:
            return
        try:
            await asyncio.to_thread(self._attributor.refresh_local, reading)
        except Exception:  # attribution must never stop the GPU loop
            log.exception("attribution_crashed")

    async def refresh_kubelet(self) -> None:
        """Ask the kubelet which pods hold which GPUs (in a thread; scrapes read the cached answer)."""
        await asyncio.to_thread(self._attributor.refresh_kubelet)
        self._publish(self.snapshot())

    # -- reload --------------------------------------------------------------------------------

    def reconfigure(self, config: Config, gpu_source: GpuSource | None) -> None:
        """Take a new configuration between runs of ``run``.

        A server whose name, URL and kind are unchanged keeps its state and rate windows (its other
        settings apply from the next poll); others start afresh, and removed ones are forgotten, so
        their series disappear. The GPU state is kept unless ``gpu_source`` is a different source.
        """
        previous, self.config = self._servers, config
        self._servers = {}
        for server in config.servers:
            state, scraper = previous.get(server.name), self._scraper(server, self._session)
            if state is not None and _same_target(state.scraper.config, server):
                state.scraper = scraper
            else:
                state = _ServerState(scraper)
            self._servers[server.name] = state
        if gpu_source is not (self._gpu.source if self._gpu is not None else None):
            self._gpu = (
                GpuPoller(gpu_source, config, clock=self._clock, wall=self._wall) if gpu_source is not None else None
            )
        elif self._gpu is not None:
            self._gpu.config = config
        self._attributor.reconfigure(config)

    # -- snapshot ------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Compose the current state: attribution, rates, cost and energy, per server and GPU."""
        reading = self._gpu.reading if self._gpu is not None else None
        attributions = self._attributor.attributions(reading)
        shares = attributed_shares(attributions, reading)
        gpu_names = {gpu.uuid: gpu.name for gpu in reading.gpus} if reading is not None else {}
        servers = tuple(
            self._server_view(name, state, shares[name], gpu_names, attributions[name])
            for name, state in self._servers.items()
        )
        return Snapshot(
            taken_at_unix=self._wall(),
            servers=servers,
            gpus=self._gpu_views(reading, servers),
            lost_gpus=reading.lost if reading is not None else (),
            nvml=self._gpu.status if self._gpu is not None else None,
            driver_version=reading.driver_version if reading is not None else "",
            currency=self.config.pricing.currency,
            ready=self.ready,
            xid_errors=self._gpu.xid_counts() if self._gpu is not None else (),
            gpu_owners=self._attributor.owners(reading),
            kubelet=self._attributor.kubelet_status,
            missed_polls=self.missed_polls,
        )

    @property
    def ready(self) -> bool:
        """True once every source has been polled at least once."""
        gpu_done = self._gpu is None or self._gpu.polled
        return gpu_done and all(state.polled for state in self._servers.values())

    def _server_view(
        self,
        name: str,
        state: _ServerState,
        shares: tuple[GpuShare, ...],
        gpu_names: Mapping[str, str],
        attribution: Attribution,
    ) -> ServerView:
        inputs = [self._cost_input(share, gpu_names.get(share.uuid)) for share in shares]
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
            attribution=attribution.method,
            gpu_memory_used_bytes=attribution.memory_bytes,
        )

    def _cost_input(self, share: GpuShare, name: str | None) -> derive.GpuCostInput:
        """The share's price by its GPU's product name, and the GPU's power (``None`` unless the GPU was read)."""
        power = self._gpu.power(share.uuid) if self._gpu is not None and name is not None else None
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
                    energy_joules=self._gpu.last_energy(sample.uuid, sample.energy_joules),
                )
            )
        return tuple(views)


def _same_target(old: ServerConfig, new: ServerConfig) -> bool:
    """True when a reload points a server at the same endpoint, so its rate windows stay valid."""
    return (old.url, old.kind) == (new.url, new.kind)


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
