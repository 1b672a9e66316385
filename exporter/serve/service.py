"""The running exporter: one HTTP client session, the GPU source, the poller task, the latest exposition.

Setup and teardown live here in one place (``start``/``stop``), which the web app's cleanup context
calls. The service holds the ``Exposition`` of the latest snapshot; scrapes read it and nothing else.

Polling, publishing and serving share one event loop, and the serving path never waits for the
others: the poller's steps are short (one request sent or one body parsed per turn of the loop),
and a snapshot is rendered in slices (``publish_in_slices``) while scrapes keep reading the
previous one's bytes; the new ``Exposition`` replaces it, in one assignment, once its due forms are
made. ``LoopLag`` measures how well that holds (``inference_exporter_event_loop_lag_seconds``).
The measured alternatives, a listener thread (the GIL makes it wait for the poll thread's parses)
and worker processes (their memory, and snapshots copied between processes), are in
docs/performance.md.

``reload`` reads the configuration again (SIGHUP, ``POST /-/reload``): a valid one replaces the
running one without a restart, an invalid one is logged with every problem and changes nothing but
``inference_config_last_reload_successful``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import structlog

from exporter.attribution.attributor import Attributor
from exporter.attribution.kubelet import PodResourcesClient
from exporter.config import Config, ConfigError
from exporter.exposition.cache import Exposition, Variant
from exporter.exposition.demand import Demand
from exporter.model import ConfigReload, Snapshot
from exporter.poll.poller import Poller
from exporter.serve.lag import LoopLag
from exporter.serve.sdnotify import Notifier
from exporter.serve.status import StatusBoard
from exporter.sources.gpu import GpuSource
from exporter.sources.gpu.nvml import NvmlModule

log = structlog.get_logger("exporter.serve.service")

GpuFactory = Callable[[Config], GpuSource | None]
KubeletFactory = Callable[[str], PodResourcesClient]
"""A client of the kubelet's pod-resources API on the given socket."""
ConfigLoader = Callable[[], Config]
"""Reads and validates the configuration again; raises ``ConfigError``. Runs in a worker thread."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: the servers it added and removed, or every problem that stopped it."""

    ok: bool
    problems: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def gpu_source(config: Config, nvml: NvmlModule | None = None) -> GpuSource:
    """The GPU source with the config's options (GPM, XID events), on ``nvml`` (default: the real one)."""
    return GpuSource(nvml, gpm=config.gpu.gpm, xid_events=config.gpu.xid_events)


def default_gpu_factory(config: Config) -> GpuSource | None:
    """Real NVML unless the config disables GPUs."""
    return None if config.gpu.enabled == "false" else gpu_source(config)


class Service:
    """Owns the sources and the poller for one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        gpu_factory: GpuFactory = default_gpu_factory,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        config_loader: ConfigLoader | None = None,
        notifier: Notifier | None = None,
        kubelet: KubeletFactory = PodResourcesClient,
    ) -> None:
        self.config = config
        self._gpu_factory = gpu_factory
        self._kubelet = kubelet
        self._loader: ConfigLoader = config_loader or (lambda: config)
        self.notifier = notifier or Notifier()
        self._reload = ConfigReload(successful=True, last_success_unix=wall())
        self._reload_lock = asyncio.Lock()
        self._was_ready = False
        self._stopped = False
        self._clock, self._wall = clock, wall
        self._session: aiohttp.ClientSession | None = None
        self._gpu: GpuSource | None = None
        self._task: asyncio.Task[None] | None = None
        self.poller: Poller | None = None
        self._demand: Demand[Variant] = Demand(clock)
        """When scrapes ask for what, so that a snapshot renders up front only what a scrape will read."""
        self.lag = LoopLag()
        self.exposition = Exposition(
            Snapshot(taken_at_unix=wall(), servers=(), gpus=(), lost_gpus=(), nvml=None), self._demand
        )
        self.status_page = StatusBoard(config, self.exposition.snapshot)
        self._tickets = self._served = 0
        """Publishes begun, and the latest one served: a publish overtaken by a later one is dropped."""

    def publish(self, snapshot: Snapshot) -> None:
        """Make a snapshot the one served now, its due forms made in one go; record it for the status page.

        For start-up and reloads (and tests); the poller publishes with ``publish_in_slices``.
        """
        ticket, exposition = self._exposition_of(snapshot, prepared=True)
        if self._serve(ticket, exposition):
            self._record(exposition)

    async def publish_in_slices(self, snapshot: Snapshot) -> None:
        """Make a snapshot the one served once its due forms are made, in slices that let scrapes in.

        The status page's history records it in a step of its own, just after.
        """
        ticket, exposition = self._exposition_of(snapshot, prepared=False)
        await exposition.prepare()
        if self._serve(ticket, exposition):
            await asyncio.sleep(0)
            if ticket == self._served:  # not overtaken meanwhile
                self._record(exposition)

    def _exposition_of(self, snapshot: Snapshot, *, prepared: bool) -> tuple[int, Exposition]:
        self._tickets += 1
        served = dataclasses.replace(snapshot, config_reload=self._reload, event_loop_lag_seconds=self.lag.worst())
        return self._tickets, Exposition(served, self._demand, prepared=prepared)

    def _serve(self, ticket: int, exposition: Exposition) -> bool:
        """Make ``exposition`` the one served, unless a later publish is served already."""
        if ticket < self._served:
            return False
        self._served = ticket
        self.exposition = exposition
        self._was_ready = self._was_ready or exposition.snapshot.ready
        return True

    def _record(self, exposition: Exposition) -> None:
        self.status_page.record(exposition.snapshot, self.config)

    async def start(self) -> None:
        """Open the client session and NVML, and start polling."""
        self.lag.start()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None),
            connector=aiohttp.TCPConnector(limit=self.config.max_connections, limit_per_host=4, force_close=False),
            headers={"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"},
            auto_decompress=True,
        )
        self._gpu = self._gpu_factory(self.config)
        self.poller = Poller(
            self.config,
            session=self._session,
            gpu_source=self._gpu,
            publish=self.publish_in_slices,
            clock=self._clock,
            wall=self._wall,
            attributor=Attributor(self.config, kubelet=self._kubelet, wall=self._wall),
        )
        self._start_polling(self.poller)

    def _start_polling(self, poller: Poller) -> None:
        self.publish(poller.snapshot())
        self._task = asyncio.create_task(poller.run(), name="poller")
        self._task.add_done_callback(_report_crash)

    async def _stop_polling(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # whatever it died of was logged when it died
            self._task = None

    async def stop(self) -> None:
        """Stop polling and release the session and NVML (after a reload in progress)."""
        async with self._reload_lock:
            self._stopped = True
            self.lag.stop()
            await self._stop_polling()
            if self._session is not None:
                await self._session.close()
            await self._close_gpu()

    @property
    def ready(self) -> bool:
        """True once every source has been polled once; a reload that adds servers does not undo it."""
        return self._was_ready

    # -- reload --------------------------------------------------------------------------------

    async def reload(self) -> ReloadResult:
        """Read the configuration again and apply it; on any problem keep the running one."""
        async with self._reload_lock:
            if self._stopped:
                return ReloadResult(ok=False, problems=("the exporter is shutting down",))
            self.notifier.reloading()
            try:
                config = await asyncio.to_thread(self._loader)
            except ConfigError as exc:
                result = self._reload_failed(exc)
            else:
                result = await self._apply(config)
            self.notifier.ready(self.status_line())
            return result

    async def _apply(self, config: Config) -> ReloadResult:
        old = {s.name for s in self.config.servers}
        new = {s.name for s in config.servers}
        result = ReloadResult(ok=True, added=tuple(sorted(new - old)), removed=tuple(sorted(old - new)))
        changed = config != self.config
        if config.max_connections != self.config.max_connections:
            log.warning("restart_required", setting="max_connections", running=self.config.max_connections)
        if changed and self.poller is not None:
            await self._stop_polling()
            if config.gpu.enabled != self.config.gpu.enabled:  # other GPU settings apply to the running source
                await self._close_gpu()
                self._gpu = self._gpu_factory(config)
            self.poller.reconfigure(config, self._gpu)
        self.config = config
        self._reload = ConfigReload(successful=True, last_success_unix=self._wall())
        if changed and self.poller is not None:
            self._start_polling(self.poller)
        else:
            self.publish(self.exposition.snapshot)
        log.info("config_reloaded", changed=changed, added=result.added, removed=result.removed, servers=len(new))
        return result

    def _reload_failed(self, exc: ConfigError) -> ReloadResult:
        log.error("config_reload_failed", source=exc.source, problems=exc.problems, kept="the running configuration")
        self._reload = ConfigReload(successful=False, last_success_unix=self._reload.last_success_unix)
        self.publish(self.exposition.snapshot)
        return ReloadResult(ok=False, problems=tuple(exc.problems))

    async def _close_gpu(self) -> None:
        if self._gpu is not None:
            await asyncio.to_thread(self._gpu.close)
            self._gpu = None

    def status_line(self) -> str:
        """One line for the service manager: what is served and how the last reload went."""
        reload = "" if self._reload.successful else "; last reload failed, previous configuration kept"
        return f"polling {len(self.config.servers)} server(s){reload}"


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("poller_crashed", error=repr(task.exception()))
