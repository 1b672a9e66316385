"""Poll the GPUs on two cadences, in worker threads, and keep what a snapshot needs from them.

The fast loop (``gpu.fast_interval``, 1 s by default) reads utilization, power, the energy counter,
clocks, clock events and GPM, and feeds each GPU's energy window; the slow loop
(``gpu.slow_interval``, 10 s) reads compute processes, ECC, power limit and MIG layout. NVML never
runs on the event loop and a read that hangs is abandoned after ``NVML_TIMEOUT_SECONDS``. NVML
that fails to start is retried every ``NVML_RETRY_SECONDS``. XID events arrive on the GPU source's
own thread; the fast loop logs each new one. ``state`` is what ``compose`` reads: it neither logs nor
calls NVML.

Energy: the energy counter where NVML has it (a decrease means the driver reloaded, and ``derive``
counts it as a reset), else power integrated over the fast loop's readings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from exporter import derive
from exporter.config import Config
from exporter.model import NOT_POLLED, GpuReading, SourceStatus, XidCount
from exporter.sources.gpu import GpuSource, NvmlUnavailable

NVML_RETRY_SECONDS = 30.0
NVML_TIMEOUT_SECONDS = 5.0

log = structlog.get_logger("exporter.gpu")


@dataclass(frozen=True, slots=True)
class GpuState:
    """The GPU loops' results at one moment, as ``compose`` reads them."""

    status: SourceStatus
    reading: GpuReading | None
    """The latest fast reading (with the latest slow values), ``None`` while NVML is down."""
    power_watts: Mapping[str, float | None]
    """Per GPU UUID: average power over the rate window, from its energy deltas."""
    energy_joules: Mapping[str, float | None]
    """Per GPU UUID: the energy counter to serve (NVML's, or power integrated over time)."""
    xid_errors: tuple[XidCount, ...]
    polled: bool


class GpuPoller:
    """The GPU source's state between polls: the latest readings, energy windows and status."""

    def __init__(
        self,
        source: GpuSource,
        config: Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.config = config
        self._clock, self._wall = clock, wall
        self.status = NOT_POLLED
        self.reading: GpuReading | None = None
        """The latest fast reading, which carries the latest slow values."""
        self.energy: dict[str, derive.CounterWindow] = {}
        self.integrated: dict[str, tuple[float, float, float]] = {}
        """uuid → (monotonic time, watts, joules) for GPUs whose NVML lacks the energy counter."""
        self.polled = False
        self._started = False
        self._next_start = 0.0
        self._start_error = "NVML is not available"
        self._start_lock = asyncio.Lock()
        self._fast_busy = self._slow_busy = False
        self._xids: dict[tuple[str, int], float] = {}

    # -- polls ---------------------------------------------------------------------------------

    async def poll_fast(self) -> bool:
        """One fast read; ``False`` when the previous one is still running (nothing changed)."""
        if self._fast_busy:
            return False
        self._fast_busy = True
        started = self._clock()
        try:
            await self._ensure_started()
            reading = await self._in_thread(self.source.read_fast)
        except NvmlUnavailable as exc:
            self._failed(str(exc), self._clock() - started)
        except Exception as exc:  # a bug in reading one field must not stop the loop
            log.exception("gpu_poll_crashed")
            self._failed(f"internal error: {exc!r}", self._clock() - started)
        else:
            self._succeeded(reading, self._clock(), started)
        finally:
            self._fast_busy = False
            self.polled = True
        self._log_new_xids()
        return True

    async def poll_slow(self) -> GpuReading | None:
        """One slow read; its values ride along with the following fast reads. ``None`` on failure."""
        if self._slow_busy:
            return None
        self._slow_busy = True
        try:
            await self._ensure_started()
            return await self._in_thread(self.source.read_slow)
        except NvmlUnavailable:
            return None  # the fast loop reports the failure
        except Exception:
            log.exception("gpu_slow_poll_crashed")
            return None
        finally:
            self._slow_busy = False

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            if self._clock() < self._next_start:
                raise NvmlUnavailable(self._start_error)
            self._next_start = self._clock() + NVML_RETRY_SECONDS
            try:
                driver = await asyncio.to_thread(self.source.start)
            except NvmlUnavailable as exc:
                self._start_error = str(exc)
                raise
            self._started = True
            log.info("nvml_started", driver_version=driver)
            if self.source.xid_unavailable:
                log.warning("xid_events_unavailable", error=self.source.xid_unavailable)

    async def _in_thread(self, read: Callable[[], GpuReading]) -> GpuReading:
        task = asyncio.ensure_future(asyncio.to_thread(read))
        try:
            return await asyncio.wait_for(asyncio.shield(task), NVML_TIMEOUT_SECONDS)
        except TimeoutError:
            raise NvmlUnavailable(f"NVML did not answer within {NVML_TIMEOUT_SECONDS:g}s") from None

    def _failed(self, error: str, duration: float) -> None:
        if self.status.up or not self.polled:
            log.warning("nvml_down", error=error)
        self.status = SourceStatus(False, duration, self.status.last_success_unix, error)
        self.reading = None

    def _succeeded(self, reading: GpuReading, now: float, started: float) -> None:
        if not self.status.up:
            log.info("nvml_up", gpus=len(reading.gpus), driver_version=reading.driver_version)
        self._log_lost(reading)
        for sample in reading.gpus:
            energy = self._energy(sample.uuid, sample.energy_joules, sample.power_watts, now)
            self.energy[sample.uuid] = derive.observe(
                self.energy.get(sample.uuid, derive.EMPTY_WINDOW), now, energy, self.config.rate_window
            )
        self.reading = reading
        self.status = SourceStatus(True, now - started, self._wall(), None)

    def _log_lost(self, reading: GpuReading) -> None:
        before = {u for _, u in self.reading.lost} if self.reading is not None else set()
        now = {u for _, u in reading.lost}
        for index, uuid in reading.lost:
            if uuid not in before:
                log.warning("gpu_lost", gpu=index, uuid=uuid)
        for uuid in before - now:
            log.info("gpu_back", uuid=uuid)

    def _energy(self, uuid: str, counter: float | None, watts: float | None, now: float) -> float | None:
        """NVML's energy counter, or power integrated over time where the GPU lacks it."""
        if counter is not None or watts is None:
            return counter
        last_t, last_w, joules = self.integrated.get(uuid, (now, watts, 0.0))
        joules = derive.integrate_power(joules, last_w, watts, now - last_t)
        self.integrated[uuid] = (now, watts, joules)
        return joules

    def failed(self, error: str) -> None:
        """Mark NVML down from outside a poll (the fast loop could not make progress)."""
        self._failed(error, 0.0)

    def _log_new_xids(self) -> None:
        for item in self.source.xid_counts():
            if item.count > self._xids.get((item.uuid, item.xid), 0.0):
                log.warning("gpu_xid_error", gpu=item.index, uuid=item.uuid, xid=item.xid, count=item.count)
                self._xids[(item.uuid, item.xid)] = item.count

    # -- what a snapshot reads ----------------------------------------------------------------

    def state(self) -> GpuState:
        """The latest readings, energy and status; no NVML call, no log."""
        gpus = self.reading.gpus if self.reading is not None else ()
        return GpuState(
            status=self.status,
            reading=self.reading,
            power_watts={gpu.uuid: self._power(gpu.uuid) for gpu in gpus},
            energy_joules={gpu.uuid: self._last_energy(gpu.uuid, gpu.energy_joules) for gpu in gpus},
            xid_errors=self.source.xid_counts(),
            polled=self.polled,
        )

    def _power(self, uuid: str) -> float | None:
        window = self.energy.get(uuid)
        return derive.rate(window) if window is not None else None

    def _last_energy(self, uuid: str, counter: float | None) -> float | None:
        if counter is not None:
            return counter
        integrated = self.integrated.get(uuid)
        return integrated[2] if integrated is not None else None
