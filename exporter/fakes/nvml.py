"""A fake of ``pynvml`` for tests and the demo: same function names, structs and error classes.

It sits *below* ``exporter.sources.gpu``: the GPU module receives a ``FakeNvml`` where production
passes the ``pynvml`` module, and runs unchanged. Errors are the real ``pynvml.NVMLError_*`` classes,
raised the way pynvml raises them (``NVMLError(code)``), and structs are pynvml's own ctypes
structures, so a misspelt field fails here as it would on a real GPU.

The simulated GPUs draw power from their load, and their energy counter is the integral of that
power over the injected clock, so energy and power agree in virtual time as they do on hardware.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

H100_NAME = "NVIDIA H100 80GB HBM3"
H100_MEMORY_BYTES = 81559 * 1024 * 1024
DRIVER_VERSION = "570.86.15"


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


def fake_uuid(seed: str) -> str:
    """A stable, well-formed GPU UUID derived from ``seed``."""
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass
class FakeGpu:
    """One simulated GPU. Tests change its fields (``load``, ``lost``) as the scenario goes on."""

    index: int
    uuid: str
    name: str = H100_NAME
    memory_total: int = H100_MEMORY_BYTES
    memory_used: int = 0
    idle_watts: float = 70.0
    max_watts: float = 700.0
    temperature_idle: float = 32.0
    load: Callable[[float], float] = lambda _t: 0.0
    """Utilization 0..1 as a function of the clock."""
    lost: bool = False
    has_energy_counter: bool = True
    energy_missing_error: int = pynvml.NVML_ERROR_NOT_SUPPORTED
    """What NVML raises for the energy counter when ``has_energy_counter`` is false."""
    _energy_mj: float = 0.0
    _last_t: float | None = None
    _last_w: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def utilization(self, now: float) -> float:
        return min(max(self.load(now), 0.0), 1.0)

    def power_watts(self, now: float) -> float:
        return self.idle_watts + (self.max_watts - self.idle_watts) * self.utilization(now)

    def energy_mj(self, now: float) -> float:
        """Energy since "driver load": trapezoidal integral of power over the clock."""
        with self._lock:
            watts = self.power_watts(now)
            if self._last_t is not None and now > self._last_t:
                self._energy_mj += (self._last_w + watts) / 2.0 * (now - self._last_t) * 1000.0
            if self._last_t is None or now > self._last_t:
                self._last_t, self._last_w = now, watts
            return self._energy_mj


class _Handle:
    """Stands in for pynvml's opaque ``c_nvmlDevice_t`` pointer."""

    def __init__(self, gpu: FakeGpu) -> None:
        self.gpu = gpu


class FakeNvml:
    """Duck-typed ``pynvml``: the functions the exporter calls, with pynvml's constants and errors."""

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        clock: Callable[[], float],
        driver_version: str = DRIVER_VERSION,
        init_error: int | None = None,
    ) -> None:
        self.gpus = gpus
        self.clock = clock
        self.driver_version = driver_version
        self.init_error = init_error
        """An ``NVML_ERROR_*`` code that ``nvmlInit`` raises (no library, no driver)."""
        self.initialized = False
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        """Constants, structs and error classes come from the real pynvml."""
        if name.startswith(("NVML", "c_nvml")):
            return getattr(pynvml, name)
        raise AttributeError(name)

    def _ready(self) -> None:
        self.calls += 1
        if not self.initialized:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: _Handle) -> FakeGpu:
        self._ready()
        if not isinstance(handle, _Handle):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if handle.gpu.lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return handle.gpu

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise _error(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self._ready()
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._ready()
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._ready()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._ready()
        if not 0 <= index < len(self.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return _Handle(self.gpus[index])

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._gpu(handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> Any:
        gpu = self._gpu(handle)
        memory = pynvml.c_nvmlMemory_t()
        memory.total = gpu.memory_total
        memory.used = gpu.memory_used
        memory.free = gpu.memory_total - gpu.memory_used
        return memory

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> Any:
        gpu = self._gpu(handle)
        rates = pynvml.c_nvmlUtilization_t()
        rates.gpu = round(gpu.utilization(self.clock()) * 100)
        rates.memory = round(gpu.utilization(self.clock()) * 60)
        return rates

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return round(self._gpu(handle).power_watts(self.clock()) * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        gpu = self._gpu(handle)
        if not gpu.has_energy_counter:
            raise _error(gpu.energy_missing_error)
        return int(gpu.energy_mj(self.clock()))

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        gpu = self._gpu(handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return round(gpu.temperature_idle + 40.0 * gpu.utilization(self.clock()))


def h100_node(
    clock: Callable[[], float], count: int = 8, seed: str = "node", load: Callable[[float], float] | None = None
) -> FakeNvml:
    """A node of ``count`` H100 80GB GPUs, all on the same load curve (idle by default)."""
    gpus = [FakeGpu(index=i, uuid=fake_uuid(f"{seed}-{i}"), load=load or (lambda _t: 0.0)) for i in range(count)]
    return FakeNvml(gpus, clock=clock)


def old_driver_node(clock: Callable[[], float], count: int = 2, seed: str = "old") -> FakeNvml:
    """An older driver whose NVML lacks the energy counter (``FunctionNotFound``)."""
    nvml = h100_node(clock, count=count, seed=seed)
    nvml.driver_version = "450.51.06"
    for gpu in nvml.gpus:
        gpu.has_energy_counter = False
        gpu.energy_missing_error = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    return nvml


def no_nvml(clock: Callable[[], float]) -> FakeNvml:
    """A machine without the NVML library: ``nvmlInit`` fails as pynvml fails there."""
    return FakeNvml([], clock=clock, init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


SCENARIOS: dict[str, Callable[[Callable[[], float]], FakeNvml]] = {
    "h100x8": h100_node,
    "old-driver": old_driver_node,
    "none": no_nvml,
}
"""Named scenarios, selectable from the command line with ``--gpu.simulate``."""
