"""Read one GPU through NVML: the fast values (each second) and the slow ones (every few seconds).

Part of the GPU source (``exporter.sources.gpu``); like it, this module talks to an injected NVML
module (``pynvml`` or the fake) and blocks, so it runs in a worker thread. A call that NVML does not
support on a GPU (``NotSupported``, ``FunctionNotFound``, ``NoPermission``) leaves that value out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from exporter.model import CLOCK_EVENT_REASONS, GpuProcess, GpuSample
from exporter.sources.gpu.nvml import Handle, NvmlModule

T = TypeVar("T")

MHZ = 1e6
NO_INSTANCE = 0xFFFFFFFF
"""What NVML puts in a process's GPU instance id outside MIG."""
_REASON_CONSTANTS = (
    "nvmlClocksEventReasonGpuIdle",
    "nvmlClocksEventReasonApplicationsClocksSetting",
    "nvmlClocksEventReasonSwPowerCap",
    "nvmlClocksEventReasonHwSlowdown",
    "nvmlClocksEventReasonSyncBoost",
    "nvmlClocksEventReasonSwThermalSlowdown",
    "nvmlClocksEventReasonHwThermalSlowdown",
    "nvmlClocksEventReasonHwPowerBrakeSlowdown",
    "nvmlClocksEventReasonDisplayClockSetting",
)
"""pynvml's bit for each name of ``CLOCK_EVENT_REASONS``, in the same order."""


class Nvml:
    """The injected NVML module, with the rule that an unsupported value is ``None``, not an error."""

    def __init__(self, module: NvmlModule) -> None:
        self.module = module
        self.skip: tuple[type[BaseException], ...] = (
            module.NVMLError_NotSupported,
            module.NVMLError_FunctionNotFound,
            module.NVMLError_NoPermission,
        )

    def optional(self, call: Callable[..., T], *args: Any) -> T | None:
        """``call(*args)``, or ``None`` when NVML does not support it here."""
        try:
            return call(*args)
        except self.skip:
            return None

    def scaled(self, call: Callable[[], float], factor: float) -> float | None:
        """``call()`` times ``factor`` as a float, or ``None`` when unsupported."""
        value = self.optional(call)
        return float(value) * factor if value is not None else None


@dataclass(frozen=True, slots=True)
class Identity:
    """What names a GPU: its NVML index, UUID and product name."""

    index: int
    uuid: str
    name: str


def identify(nvml: Nvml, index: int, handle: Handle) -> Identity:
    """Index, UUID and name of the GPU behind ``handle``."""
    return Identity(index, text(nvml.module.nvmlDeviceGetUUID(handle)), text(nvml.module.nvmlDeviceGetName(handle)))


def read_fast(nvml: Nvml, who: Identity, handle: Handle) -> GpuSample:
    """Utilization, memory, power, energy, temperature, clocks and clock events of one GPU."""
    m = nvml.module
    memory = memory_info(nvml, handle)
    return GpuSample(
        index=who.index,
        uuid=who.uuid,
        name=who.name,
        utilization_ratio=nvml.scaled(lambda: m.nvmlDeviceGetUtilizationRates(handle).gpu, 0.01),
        memory_used_bytes=float(memory.used) if memory is not None else None,
        memory_total_bytes=float(memory.total) if memory is not None else None,
        power_watts=power_watts(nvml, handle),
        energy_joules=nvml.scaled(lambda: m.nvmlDeviceGetTotalEnergyConsumption(handle), 0.001),
        temperature_celsius=nvml.scaled(lambda: m.nvmlDeviceGetTemperature(handle, m.NVML_TEMPERATURE_GPU), 1.0),
        sm_clock_hertz=nvml.scaled(lambda: m.nvmlDeviceGetClockInfo(handle, m.NVML_CLOCK_SM), MHZ),
        memory_clock_hertz=nvml.scaled(lambda: m.nvmlDeviceGetClockInfo(handle, m.NVML_CLOCK_MEM), MHZ),
        clock_events=clock_events(nvml, handle),
    )


def memory_info(nvml: Nvml, handle: Handle) -> Any:
    """Memory info, version 2 where the driver has it (``used`` then leaves out what the driver reserves,
    as ``nvidia-smi`` shows it), else version 1; ``None`` when unsupported."""
    m = nvml.module
    version = getattr(m, "nvmlMemory_v2", None)
    if version is not None:
        with contextlib.suppress(m.NVMLError):  # an older driver: version 1 below
            return m.nvmlDeviceGetMemoryInfo(handle, version=version)
    return nvml.optional(m.nvmlDeviceGetMemoryInfo, handle)


def power_watts(nvml: Nvml, handle: Handle) -> float | None:
    """Instantaneous power where the driver has it (a field value), else NVML's power usage."""
    m = nvml.module
    values = nvml.optional(m.nvmlDeviceGetFieldValues, handle, [m.NVML_FI_DEV_POWER_INSTANT])
    if values is not None and values[0].nvmlReturn == m.NVML_SUCCESS:
        instant = field_value(m, values[0])
        if instant is not None:
            return instant * 0.001
    return nvml.scaled(lambda: m.nvmlDeviceGetPowerUsage(handle), 0.001)


def field_value(m: NvmlModule, value: Any) -> float | None:
    """The number in a ``c_nvmlFieldValue_t``, by its value type."""
    member = {
        m.NVML_VALUE_TYPE_DOUBLE: "dVal",
        m.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        m.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        m.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        m.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        m.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    }.get(value.valueType)
    return float(getattr(value.value, member)) if member is not None else None


def clock_events(nvml: Nvml, handle: Handle) -> frozenset[str] | None:
    """The active clock event reasons, through the current call or, on older drivers, the throttle one."""
    m = nvml.module
    bits = nvml.optional(m.nvmlDeviceGetCurrentClocksEventReasons, handle)
    if bits is None:
        bits = nvml.optional(m.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
    if bits is None:
        return None
    return decode_clock_events(m, int(bits))


def decode_clock_events(m: NvmlModule, bits: int) -> frozenset[str]:
    """Names of the reasons set in ``bits``; bits without a name here are ignored."""
    return frozenset(
        name
        for name, constant in zip(CLOCK_EVENT_REASONS, _REASON_CONSTANTS, strict=True)
        if bits & getattr(m, constant)
    )


@dataclass(frozen=True, slots=True)
class SlowValues:
    """The slow-loop values of one GPU (not its MIG layout, which ``gpu_mig`` reads)."""

    processes: tuple[GpuProcess, ...] | None
    power_limit_watts: float | None
    ecc_corrected_errors: float | None
    ecc_uncorrected_errors: float | None
    minor_number: int | None


def read_slow(nvml: Nvml, handle: Handle, mig_mode: bool) -> SlowValues:
    """Compute processes, power limit, ECC counts and device minor number of one GPU."""
    m = nvml.module

    def ecc(error_type: int) -> float | None:
        return nvml.scaled(lambda: m.nvmlDeviceGetTotalEccErrors(handle, error_type, m.NVML_VOLATILE_ECC), 1.0)

    return SlowValues(
        processes=None if mig_mode else processes(nvml, handle),
        power_limit_watts=nvml.scaled(lambda: m.nvmlDeviceGetEnforcedPowerLimit(handle), 0.001),
        ecc_corrected_errors=ecc(m.NVML_MEMORY_ERROR_TYPE_CORRECTED),
        ecc_uncorrected_errors=ecc(m.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
        minor_number=nvml.optional(m.nvmlDeviceGetMinorNumber, handle),
    )


def processes(nvml: Nvml, handle: Handle) -> tuple[GpuProcess, ...] | None:
    """The compute processes on a GPU (or MIG instance) with their memory, ``None`` if NVML will not say."""
    listed = nvml.optional(nvml.module.nvmlDeviceGetComputeRunningProcesses, handle)
    if listed is None:
        return None
    return tuple(
        GpuProcess(
            pid=int(p.pid),
            used_memory_bytes=float(p.usedGpuMemory) if p.usedGpuMemory is not None else None,
            gpu_instance=_instance(getattr(p, "gpuInstanceId", NO_INSTANCE)),
        )
        for p in listed
    )


def _instance(value: int) -> int | None:
    return None if value in (NO_INSTANCE, None) else int(value)


def text(value: str | bytes) -> str:
    """NVML strings arrive as ``str`` or ``bytes`` depending on the pynvml version."""
    return value.decode() if isinstance(value, bytes) else value
