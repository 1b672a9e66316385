"""Every NVML call, constant and error class the GPU module uses, as a typed ``Protocol``.

The GPU module is handed an object of this shape: the ``pynvml`` module in production, the fake in
``exporter.fakes.nvml`` in tests and the demo. Naming the surface here keeps the two honest (a call
the module makes but the fake lacks is a type error, not a surprise on a GPU machine) and documents
which NVML functions the exporter needs from a driver. Handles and ctypes structs stay ``Any``:
they are opaque values NVML hands back and forth.
"""

from __future__ import annotations

from typing import Any, Protocol

Handle = Any
"""An NVML device (or MIG device) handle."""


class NvmlErrors(Protocol):
    """The error classes (``pynvml`` makes one per return code)."""

    NVMLError: type[Exception]
    NVMLError_NotSupported: type[Exception]
    NVMLError_FunctionNotFound: type[Exception]
    NVMLError_NoPermission: type[Exception]
    NVMLError_InvalidArgument: type[Exception]
    NVMLError_NotFound: type[Exception]
    NVMLError_Timeout: type[Exception]


class NvmlConstants(Protocol):
    """The constants (enum values and bit masks) the calls take or return."""

    NVML_SUCCESS: int
    NVML_CLOCK_SM: int
    NVML_CLOCK_MEM: int
    NVML_TEMPERATURE_GPU: int
    NVML_FI_DEV_POWER_INSTANT: int
    NVML_VOLATILE_ECC: int
    NVML_MEMORY_ERROR_TYPE_CORRECTED: int
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED: int
    NVML_DEVICE_MIG_ENABLE: int
    NVML_VALUE_TYPE_DOUBLE: int
    NVML_VALUE_TYPE_UNSIGNED_INT: int
    NVML_VALUE_TYPE_UNSIGNED_LONG: int
    NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: int
    NVML_VALUE_TYPE_SIGNED_LONG_LONG: int
    NVML_VALUE_TYPE_SIGNED_INT: int
    NVML_GPM_METRICS_GET_VERSION: int
    NVML_GPM_METRIC_SM_UTIL: int
    NVML_GPM_METRIC_SM_OCCUPANCY: int
    NVML_GPM_METRIC_ANY_TENSOR_UTIL: int
    NVML_GPM_METRIC_DRAM_BW_UTIL: int
    nvmlEventTypeXidCriticalError: int
    c_nvmlGpmMetricsGet_t: Any
    """The ctypes struct of a GPM metrics request."""


class NvmlSystem(Protocol):
    """Library and system calls."""

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle: ...


class NvmlDevice(Protocol):
    """Per-device queries of the fast and slow loops."""

    def nvmlDeviceGetUUID(self, handle: Handle) -> str | bytes: ...
    def nvmlDeviceGetName(self, handle: Handle) -> str | bytes: ...
    def nvmlDeviceGetMinorNumber(self, handle: Handle) -> int: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Handle, version: int | None = ...) -> Any: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Handle) -> Any: ...
    def nvmlDeviceGetPowerUsage(self, handle: Handle) -> int: ...
    def nvmlDeviceGetFieldValues(self, handle: Handle, field_ids: list[int]) -> Any: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Handle) -> int: ...
    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int: ...
    def nvmlDeviceGetClockInfo(self, handle: Handle, clock_type: int) -> int: ...
    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Handle) -> int: ...
    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Handle) -> int: ...
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Handle) -> int: ...
    def nvmlDeviceGetTotalEccErrors(self, handle: Handle, error_type: int, counter_type: int) -> int: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Handle) -> list[Any]: ...


class NvmlMig(Protocol):
    """MIG layout queries of the slow loop."""

    def nvmlDeviceGetMigMode(self, handle: Handle) -> Any: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Handle) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Handle, index: int) -> Handle: ...
    def nvmlDeviceGetGpuInstanceId(self, handle: Handle) -> int: ...
    def nvmlDeviceGetComputeInstanceId(self, handle: Handle) -> int: ...
    def nvmlDeviceGetAttributes(self, handle: Handle) -> Any: ...


class NvmlGpm(Protocol):
    """GPM profiling (Hopper and newer)."""

    def nvmlGpmQueryDeviceSupport(self, handle: Handle) -> Any: ...
    def nvmlGpmSampleAlloc(self) -> Any: ...
    def nvmlGpmSampleFree(self, sample: Any) -> None: ...
    def nvmlGpmSampleGet(self, handle: Handle, sample: Any) -> Any: ...
    def nvmlGpmMigSampleGet(self, handle: Handle, gpu_instance: int, sample: Any) -> Any: ...
    def nvmlGpmMetricsGet(self, request: Any) -> Any: ...


class NvmlEvents(Protocol):
    """XID events on their own thread."""

    def nvmlEventSetCreate(self) -> Any: ...
    def nvmlEventSetFree(self, event_set: Any) -> None: ...
    def nvmlDeviceRegisterEvents(self, handle: Handle, event_types: int, event_set: Any) -> None: ...
    def nvmlEventSetWait_v2(self, event_set: Any, timeout_ms: int) -> Any: ...


class NvmlModule(NvmlErrors, NvmlConstants, NvmlSystem, NvmlDevice, NvmlMig, NvmlGpm, NvmlEvents, Protocol):
    """The whole surface: what ``GpuSource(nvml=...)`` takes."""
