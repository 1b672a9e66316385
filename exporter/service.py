"""The running exporter: one HTTP client session, the GPU source, the poller task, the latest exposition.

Setup and teardown live here in one place (``start``/``stop``), which the web app's cleanup context
calls. The service holds the ``Exposition`` of the latest snapshot; scrapes read it and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp
import structlog

from exporter.config import Config
from exporter.exposition.cache import Exposition
from exporter.model import Snapshot
from exporter.poller import Poller
from exporter.sources.gpu import GpuSource

log = structlog.get_logger("exporter.service")

GpuFactory = Callable[[Config], GpuSource | None]


def default_gpu_factory(config: Config) -> GpuSource | None:
    """Real NVML unless the config disables GPUs."""
    return None if config.gpu.enabled == "false" else GpuSource()


class Service:
    """Owns the sources and the poller for one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        gpu_factory: GpuFactory = default_gpu_factory,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._gpu_factory = gpu_factory
        self._clock, self._wall = clock, wall
        self._session: aiohttp.ClientSession | None = None
        self._gpu: GpuSource | None = None
        self._task: asyncio.Task[None] | None = None
        self.poller: Poller | None = None
        self.exposition = Exposition(Snapshot(taken_at_unix=wall(), servers=(), gpus=(), lost_gpus=(), nvml=None))

    def publish(self, snapshot: Snapshot) -> None:
        """Render a new snapshot once; later scrapes serve its bytes."""
        self.exposition = Exposition(snapshot)

    async def start(self) -> None:
        """Open the client session and NVML, and start polling."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None),
            connector=aiohttp.TCPConnector(limit=100, limit_per_host=4, force_close=False),
            headers={"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"},
            auto_decompress=True,
        )
        self._gpu = self._gpu_factory(self.config)
        self.poller = Poller(
            self.config,
            session=self._session,
            gpu_source=self._gpu,
            publish=self.publish,
            clock=self._clock,
            wall=self._wall,
        )
        self.publish(self.poller.snapshot())
        self._task = asyncio.create_task(self.poller.run(), name="poller")
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        """Stop polling and release the session and NVML."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
        if self._gpu is not None:
            await asyncio.to_thread(self._gpu.close)

    @property
    def ready(self) -> bool:
        """True once every source has been polled once."""
        return self.exposition.snapshot.ready


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("poller_crashed", error=repr(task.exception()))
