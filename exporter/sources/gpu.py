"""Read the node's NVIDIA GPUs through NVML (``pynvml`` from ``nvidia-ml-py``).

This is the only module that talks to NVML. Every call here blocks, so the poller runs ``read`` in
a worker thread, never on the event loop. The NVML module is injected (``GpuSource(nvml=...)``):
production passes ``pynvml``, tests and the demo pass the fake in ``exporter.fakes.nvml``, which has
the same functions, structs and error classes. This code runs unchanged against both.

A call that NVML does not support on a GPU (``NotSupported``, ``FunctionNotFound``, ``NoPermission``)
leaves that one value out. A GPU that NVML reports as lost is listed in ``GpuReading.lost`` and read
again on later polls, so it comes back without a restart when the driver recovers it.

Sample of what the exposition makes of one reading::

    inference_gpu_info{gpu="0",uuid="GPU-5d8e...",name="NVIDIA H100 80GB HBM3",driver_version="570.86"} 1
    inference_gpu_power_watts{gpu="0",uuid="GPU-5d8e..."} 512.3
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from exporter.model import GpuReading, GpuSample

T = TypeVar("T")


class NvmlUnavailable(Exception):
    """NVML cannot be used on this machine (no library, no driver, no permission)."""


def load_pynvml() -> Any:
    """Import the real ``pynvml``; it loads the shared library only at ``nvmlInit``."""
    return importlib.import_module("pynvml")


class GpuSource:
    """Reads every GPU once per ``read()``. Not thread-safe: one reader thread at a time."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml = nvml if nvml is not None else load_pynvml()
        self._initialized = False
        self._uuids: dict[int, str] = {}
        self._skip = (
            self._nvml.NVMLError_NotSupported,
            self._nvml.NVMLError_FunctionNotFound,
            self._nvml.NVMLError_NoPermission,
        )

    def start(self) -> str:
        """Initialize NVML and return the driver version; raise ``NvmlUnavailable`` with the reason."""
        try:
            self._nvml.nvmlInit()
            self._initialized = True
            return _text(self._nvml.nvmlSystemGetDriverVersion())
        except self._nvml.NVMLError as exc:
            raise NvmlUnavailable(f"NVML failed to initialize: {exc}") from exc

    def close(self) -> None:
        """Shut NVML down; safe to call twice."""
        if self._initialized:
            self._initialized = False
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()

    def read(self) -> GpuReading:
        """Read every GPU. Raises ``NvmlUnavailable`` when NVML itself fails (not one GPU)."""
        if not self._initialized:
            raise NvmlUnavailable("NVML is not initialized")
        try:
            driver = _text(self._nvml.nvmlSystemGetDriverVersion())
            count = self._nvml.nvmlDeviceGetCount()
        except self._nvml.NVMLError as exc:
            raise NvmlUnavailable(f"NVML stopped answering: {exc}") from exc
        gpus: list[GpuSample] = []
        lost: list[tuple[int, str]] = []
        for index in range(count):
            try:
                gpus.append(self._read_one(index))
            except self._nvml.NVMLError_GpuIsLost:
                lost.append((index, self._uuids.get(index, "")))
        return GpuReading(driver_version=driver, gpus=tuple(gpus), lost=tuple(lost))

    def _read_one(self, index: int) -> GpuSample:
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        self._uuids[index] = uuid
        memory = self._optional(nvml.nvmlDeviceGetMemoryInfo, handle)
        return GpuSample(
            index=index,
            uuid=uuid,
            name=_text(nvml.nvmlDeviceGetName(handle)),
            utilization_ratio=self._scaled(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu, 0.01),
            memory_used_bytes=float(memory.used) if memory is not None else None,
            memory_total_bytes=float(memory.total) if memory is not None else None,
            power_watts=self._scaled(lambda: nvml.nvmlDeviceGetPowerUsage(handle), 0.001),
            energy_joules=self._scaled(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle), 0.001),
            temperature_celsius=self._scaled(
                lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU), 1.0
            ),
        )

    def _optional(self, call: Callable[..., T], *args: Any) -> T | None:
        try:
            return call(*args)
        except self._skip:
            return None

    def _scaled(self, call: Callable[[], float], factor: float) -> float | None:
        value = self._optional(call)
        return float(value) * factor if value is not None else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
