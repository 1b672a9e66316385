"""Read the node's NVIDIA GPUs through NVML (``pynvml`` from ``nvidia-ml-py``).

This is the NVML boundary: only this module and its ``gpu_*`` parts talk to NVML, and they import
nothing that needs more than the Python standard library and ``exporter.model``, so the hardware
check (``scripts/gpu-smoke.sh``) runs them on a GPU machine without installing the exporter. Every
call blocks, so the poller runs reads in worker threads, never on the event loop. The NVML module
is injected (``GpuSource(nvml=...)``): production passes ``pynvml``, tests and the demo pass the fake
in ``exporter.fakes.nvml``, which has the same functions, structs and error classes.

Two cadences: ``read_fast`` (utilization, power, energy, clocks, clock events, GPM) is cheap and
runs every second; ``read_slow`` (compute processes, ECC, power limit, MIG layout) runs every few
seconds, and ``read_fast`` carries its latest values along. XID errors arrive on an event thread
(``gpu_events``). A call NVML does not support leaves that value out. A GPU that NVML reports lost
(or that fails to answer) is listed in ``GpuReading.lost`` and read again on the next poll, so it
comes back without a restart when the driver recovers it.

Sample of what the exposition makes of one reading::

    inference_gpu_info{gpu="0",uuid="GPU-5d8e...",name="NVIDIA H100 80GB HBM3",driver_version="570.86"} 1
    inference_gpu_power_watts{gpu="0",uuid="GPU-5d8e..."} 512.3
    inference_gpu_clock_event_active{gpu="0",uuid="GPU-5d8e...",reason="sw_power_cap"} 1
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from exporter.model import GpmMetrics, GpuReading, GpuSample, MigDeviceSample, XidCount
from exporter.sources.gpu.device import Identity, Nvml, identify, read_fast, read_slow, text
from exporter.sources.gpu.events import XidWatcher
from exporter.sources.gpu.gpm import GpmSampler, Key
from exporter.sources.gpu.mig import mig_enabled, read_mig_devices
from exporter.sources.gpu.nvml import Handle, NvmlModule


class NvmlUnavailable(Exception):
    """NVML cannot be used on this machine (no library, no driver, no permission)."""


def load_pynvml() -> NvmlModule:
    """Import the real ``pynvml``; it loads the shared library only at ``nvmlInit``."""
    return importlib.import_module("pynvml")


class GpuSource:
    """Reads every GPU. ``read_fast`` and ``read_slow`` may run in two threads at once; each alone is serial."""

    def __init__(self, nvml: NvmlModule | None = None, *, gpm: bool = False, xid_events: bool = False) -> None:
        self._module: NvmlModule = nvml if nvml is not None else load_pynvml()
        self._nvml = Nvml(self._module)
        self._initialized = False
        self._uuids: dict[int, str] = {}
        self._slow: dict[str, GpuSample] = {}
        """UUID → the GPU's latest slow-loop values (replaced whole by each ``read_slow``)."""
        self._gpm = GpmSampler(self._nvml) if gpm else None
        self._xid_events = xid_events
        self._events: XidWatcher | None = None

    def start(self) -> str:
        """Initialize NVML (and the XID thread) and return the driver version; raise ``NvmlUnavailable``."""
        try:
            self._module.nvmlInit()
            self._initialized = True
            driver = text(self._module.nvmlSystemGetDriverVersion())
        except self._module.NVMLError as exc:
            raise NvmlUnavailable(f"NVML failed to initialize: {exc}") from exc
        if self._xid_events:
            self._events = XidWatcher(self._nvml)
            self._events.start()
        return driver

    def close(self) -> None:
        """Stop the XID thread, free GPM buffers and shut NVML down; safe to call twice."""
        if not self._initialized:
            return
        if self._events is not None:
            self._events.stop()
            self._events = None
        if self._gpm is not None:
            self._gpm.close()
        self._initialized = False
        with contextlib.suppress(self._module.NVMLError):
            self._module.nvmlShutdown()

    @property
    def xid_unavailable(self) -> str | None:
        """Why XID events are not watched although asked for, else ``None``."""
        return self._events.unavailable if self._events is not None else None

    def xid_counts(self) -> tuple[XidCount, ...]:
        """XID events seen since ``start``, per GPU and code."""
        return self._events.counts() if self._events is not None else ()

    def read(self) -> GpuReading:
        """Read everything once: the slow values, then the fast ones (which carry the slow ones)."""
        self.read_slow()
        return self.read_fast()

    def read_fast(self) -> GpuReading:
        """Fast-loop values of every GPU, with the latest slow-loop values attached."""
        reading = self._each_gpu(self._fast_one)
        if self._gpm is not None:
            self._gpm.forget(self._gpm_keys(reading))
        return reading

    def read_slow(self) -> GpuReading:
        """Slow-loop values of every GPU (processes, ECC, power limit, MIG layout); ``read_fast`` carries them."""
        reading = self._each_gpu(self._slow_one)
        self._slow = {gpu.uuid: gpu for gpu in reading.gpus}
        return reading

    def _each_gpu(self, read_one: Callable[[Identity, Any], GpuSample]) -> GpuReading:
        if not self._initialized:
            raise NvmlUnavailable("NVML is not initialized")
        m = self._module
        try:
            driver = text(m.nvmlSystemGetDriverVersion())
            count = m.nvmlDeviceGetCount()
        except m.NVMLError as exc:
            raise NvmlUnavailable(f"NVML stopped answering: {exc}") from exc
        gpus: list[GpuSample] = []
        lost: list[tuple[int, str]] = []
        for index in range(count):
            try:
                handle = m.nvmlDeviceGetHandleByIndex(index)
                who = identify(self._nvml, index, handle)
                self._uuids[index] = who.uuid
                gpus.append(read_one(who, handle))
            except m.NVMLError:  # GPU_IS_LOST, or any failure of this one GPU: up 0, the others go on
                lost.append((index, self._uuids.get(index, "")))
        return GpuReading(driver_version=driver, gpus=tuple(gpus), lost=tuple(lost))

    def _fast_one(self, who: Identity, handle: Handle) -> GpuSample:
        sample = read_fast(self._nvml, who, handle)
        slow = self._slow.get(who.uuid)
        if slow is None:
            return sample
        migs = slow.mig_devices
        gpm = None
        if self._gpm is not None and self._gpm.supported(who.uuid, handle):
            gpm, migs = self._gpm_values(who.uuid, handle, migs)
        return dataclasses.replace(
            sample,
            processes=slow.processes,
            power_limit_watts=slow.power_limit_watts,
            ecc_corrected_errors=slow.ecc_corrected_errors,
            ecc_uncorrected_errors=slow.ecc_uncorrected_errors,
            minor_number=slow.minor_number,
            mig_devices=migs,
            gpm=gpm,
        )

    def _gpm_values(
        self, uuid: str, handle: Handle, migs: tuple[MigDeviceSample, ...]
    ) -> tuple[GpmMetrics | None, tuple[MigDeviceSample, ...]]:
        assert self._gpm is not None
        if not migs:
            return self._gpm.measure((uuid, None), handle), migs
        measured = []
        for mig in migs:
            metrics = self._gpm.measure((uuid, mig.gpu_instance), handle)
            activity = metrics.sm_activity_ratio if metrics is not None else None
            measured.append(dataclasses.replace(mig, sm_activity_ratio=activity))
        return None, tuple(measured)

    def _gpm_keys(self, reading: GpuReading) -> set[Key]:
        keys: set[Key] = set()
        for gpu in reading.gpus:
            keys.add((gpu.uuid, None))
            keys.update((gpu.uuid, mig.gpu_instance) for mig in gpu.mig_devices)
        return keys

    def _slow_one(self, who: Identity, handle: Handle) -> GpuSample:
        mig = mig_enabled(self._nvml, handle)
        values = read_slow(self._nvml, handle, mig)
        devices = read_mig_devices(self._nvml, handle) if mig else ()
        processes = values.processes
        if mig:
            processes = tuple(
                dataclasses.replace(p, gpu_instance=d.gpu_instance) for d in devices for p in d.processes or ()
            )
        if self._events is not None:
            self._events.watch(who.index, who.uuid, handle)
        return GpuSample(
            index=who.index,
            uuid=who.uuid,
            name=who.name,
            processes=processes,
            power_limit_watts=values.power_limit_watts,
            ecc_corrected_errors=values.ecc_corrected_errors,
            ecc_uncorrected_errors=values.ecc_uncorrected_errors,
            mig_devices=devices,
            minor_number=values.minor_number,
        )
