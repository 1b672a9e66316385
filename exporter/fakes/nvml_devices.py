"""The simulated hardware behind the fake NVML: GPUs, MIG instances and compute processes.

A ``FakeGpu`` derives everything from its load curve and the injected clock: power rises with load,
the energy counter is the integral of that power, the SM clock drops and ``sw_power_cap`` turns on
near the power limit, and an idle GPU reports ``gpu_idle``, as H100s do.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pynvml

H100_NAME = "NVIDIA H100 80GB HBM3"
H100_MEMORY_BYTES = 81559 * 1024 * 1024
MIB = 1024 * 1024

IDLE_SM_CLOCK_MHZ = 345.0
MAX_SM_CLOCK_MHZ = 1980.0
H100_MEMORY_CLOCK_MHZ = 2619.0
POWER_CAP_LOAD = 0.85
"""Above this load the simulated GPU reaches its power limit and NVML reports ``sw_power_cap``."""


@dataclass
class FakeProcess:
    """A compute process as NVML lists it: a host PID, its GPU memory, and its MIG instance."""

    pid: int
    used_memory: int | None = 2 * 1024**3
    gpu_instance: int | None = None
    compute_instance: int | None = None


@dataclass
class FakeMigDevice:
    """One MIG instance of a GPU (a GPU instance with one compute instance)."""

    uuid: str
    gpu_instance: int
    compute_instance: int = 0
    profile: str = "1g.10gb"
    slices: int = 1
    memory_total: int = 9984 * MIB
    memory_used: int = 0
    load: Callable[[float], float] = lambda _t: 0.0
    processes: list[FakeProcess] = field(default_factory=list)


@dataclass
class FakeGpu:
    """One simulated GPU. Tests change its fields (``load``, ``lost``, ``processes``) as a scenario goes on."""

    index: int
    uuid: str
    name: str = H100_NAME
    memory_total: int = H100_MEMORY_BYTES
    memory_used: int = 0
    idle_watts: float = 70.0
    max_watts: float = 700.0
    """Power at full load, which is also the enforced power limit."""
    temperature_idle: float = 32.0
    load: Callable[[float], float] = lambda _t: 0.0
    """Utilization 0..1 as a function of the clock."""
    lost: bool = False
    lost_between: tuple[float, float] | None = None
    """A clock interval in which the GPU is lost as well (a scenario that recovers by itself)."""
    has_energy_counter: bool = True
    energy_missing_error: int = pynvml.NVML_ERROR_NOT_SUPPORTED
    """What NVML raises for the energy counter when ``has_energy_counter`` is false."""
    energy_integral: Callable[[float], float] | None = None
    """Joules since "driver load" in closed form; without it, power is integrated between reads."""
    has_gpm: bool = True
    """Hopper and newer have GPM; older GPUs and drivers do not."""
    has_power_instant: bool = True
    """Newer drivers report instantaneous power as a field value."""
    has_clock_event_reasons: bool = True
    """Drivers before 535 have only the older ``...ClocksThrottleReasons`` call."""
    extra_clock_events: int = 0
    """Clock event bits a test forces on (thermal slowdown, ...)."""
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0
    processes: list[FakeProcess] = field(default_factory=list)
    mig: list[FakeMigDevice] | None = None
    """MIG instances; ``None`` when the GPU is not in MIG mode."""
    _energy_mj: float = 0.0
    _last_t: float | None = None
    _last_w: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def is_lost(self, now: float) -> bool:
        """True while NVML reports the GPU lost (``GPU_IS_LOST``)."""
        return self.lost or (self.lost_between is not None and self.lost_between[0] <= now < self.lost_between[1])

    def utilization(self, now: float) -> float:
        return min(max(self.load(now), 0.0), 1.0)

    def power_watts(self, now: float) -> float:
        return self.idle_watts + (self.max_watts - self.idle_watts) * self.utilization(now)

    def energy_mj(self, now: float) -> float:
        """Energy since "driver load": closed form where given, else trapezoids of power over the clock."""
        if self.energy_integral is not None:
            return self.energy_integral(now) * 1000.0
        with self._lock:
            watts = self.power_watts(now)
            if self._last_t is not None and now > self._last_t:
                self._energy_mj += (self._last_w + watts) / 2.0 * (now - self._last_t) * 1000.0
            if self._last_t is None or now > self._last_t:
                self._last_t, self._last_w = now, watts
            return self._energy_mj

    def sm_clock_mhz(self, now: float) -> float:
        load = self.utilization(now)
        if load <= 0.0:
            return IDLE_SM_CLOCK_MHZ
        if load < POWER_CAP_LOAD:
            return MAX_SM_CLOCK_MHZ
        return MAX_SM_CLOCK_MHZ - 600.0 * (load - POWER_CAP_LOAD) / (1.0 - POWER_CAP_LOAD)

    def clock_events(self, now: float) -> int:
        """The NVML clock event bit mask at ``now``."""
        load = self.utilization(now)
        bits = self.extra_clock_events
        if load <= 0.0:
            bits |= pynvml.nvmlClocksEventReasonGpuIdle
        if load >= POWER_CAP_LOAD:
            bits |= pynvml.nvmlClocksEventReasonSwPowerCap
        return bits

    def temperature(self, now: float) -> int:
        return round(self.temperature_idle + 40.0 * self.utilization(now))


def sine_load(start: float, base: float, swing: float, period: float) -> Callable[[float], float]:
    """``base + swing·sin(2π(t-start)/period)``: a load whose energy has a closed form (see ``sine_energy``)."""
    return lambda t: base + swing * math.sin(2 * math.pi * (t - start) / period)


def sine_energy(gpu: FakeGpu, start: float, base: float, swing: float, period: float) -> Callable[[float], float]:
    """Joules since ``start`` for ``gpu`` under ``sine_load`` (valid while the load stays within 0..1)."""
    span = gpu.max_watts - gpu.idle_watts
    w = 2 * math.pi / period

    def joules(t: float) -> float:
        elapsed = max(t - start, 0.0)
        load_integral = base * elapsed + swing / w * (1.0 - math.cos(w * elapsed))
        return gpu.idle_watts * elapsed + span * load_integral

    return joules
