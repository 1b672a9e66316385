"""The fake NVML's plumbing: initialization, errors, and device handles that are real ctypes pointers.

A handle is a ``pynvml.c_nvmlDevice_t`` pointing at a struct the fake owns, one per device for the
fake's lifetime, as NVML's handles are stable for a session. Because they are real pointers, they fit
into pynvml's own structs (``c_nvmlEventData_t.device``) exactly as on hardware.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pynvml

from exporter.fakes.nvml_devices import FakeGpu, FakeMigDevice

DRIVER_VERSION = "570.86.15"


def nvml_error(code: int) -> pynvml.NVMLError:
    """The exception pynvml raises for ``code`` (an ``NVMLError_*`` subclass)."""
    return pynvml.NVMLError(code)


def address(pointer: Any) -> int:
    """The address a ctypes pointer holds (0 for NULL or anything that is not a pointer)."""
    try:
        return int(ctypes.cast(pointer, ctypes.c_void_p).value or 0)
    except (TypeError, ctypes.ArgumentError):
        return 0


class PynvmlNames:
    """The constants and error classes of ``exporter.sources.gpu.nvml.NvmlModule``, taken from pynvml.

    Declared one by one (rather than only through ``__getattr__``) so the type checker sees that the
    fake offers everything the GPU module uses.
    """

    NVMLError: type[Exception] = pynvml.NVMLError
    NVMLError_FunctionNotFound: type[Exception] = pynvml.NVMLError_FunctionNotFound
    NVMLError_InvalidArgument: type[Exception] = pynvml.NVMLError_InvalidArgument
    NVMLError_NoPermission: type[Exception] = pynvml.NVMLError_NoPermission
    NVMLError_NotFound: type[Exception] = pynvml.NVMLError_NotFound
    NVMLError_NotSupported: type[Exception] = pynvml.NVMLError_NotSupported
    NVMLError_Timeout: type[Exception] = pynvml.NVMLError_Timeout
    NVML_CLOCK_MEM: int = pynvml.NVML_CLOCK_MEM
    NVML_CLOCK_SM: int = pynvml.NVML_CLOCK_SM
    NVML_DEVICE_MIG_ENABLE: int = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_FI_DEV_POWER_INSTANT: int = pynvml.NVML_FI_DEV_POWER_INSTANT
    NVML_GPM_METRICS_GET_VERSION: int = pynvml.NVML_GPM_METRICS_GET_VERSION
    NVML_GPM_METRIC_ANY_TENSOR_UTIL: int = pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL
    NVML_GPM_METRIC_DRAM_BW_UTIL: int = pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL
    NVML_GPM_METRIC_SM_OCCUPANCY: int = pynvml.NVML_GPM_METRIC_SM_OCCUPANCY
    NVML_GPM_METRIC_SM_UTIL: int = pynvml.NVML_GPM_METRIC_SM_UTIL
    NVML_MEMORY_ERROR_TYPE_CORRECTED: int = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED: int = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_SUCCESS: int = pynvml.NVML_SUCCESS
    NVML_TEMPERATURE_GPU: int = pynvml.NVML_TEMPERATURE_GPU
    NVML_VALUE_TYPE_DOUBLE: int = pynvml.NVML_VALUE_TYPE_DOUBLE
    NVML_VALUE_TYPE_SIGNED_INT: int = pynvml.NVML_VALUE_TYPE_SIGNED_INT
    NVML_VALUE_TYPE_SIGNED_LONG_LONG: int = pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG
    NVML_VALUE_TYPE_UNSIGNED_INT: int = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
    NVML_VALUE_TYPE_UNSIGNED_LONG: int = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG
    NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: int = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
    NVML_VOLATILE_ECC: int = pynvml.NVML_VOLATILE_ECC
    nvmlEventTypeXidCriticalError: int = pynvml.nvmlEventTypeXidCriticalError
    c_nvmlGpmMetricsGet_t: Any = pynvml.c_nvmlGpmMetricsGet_t


class FakeNvmlBase(PynvmlNames):
    """State shared by every part of the fake: GPUs, clock, init state and the handle registry."""

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        clock: Callable[[], float],
        driver_version: str = DRIVER_VERSION,
        init_error: int | None = None,
        privileged: bool = False,
    ) -> None:
        self.gpus = gpus
        self.clock = clock
        self.driver_version = driver_version
        self.init_error = init_error
        """An ``NVML_ERROR_*`` code that ``nvmlInit`` raises (no library, no driver)."""
        self.privileged = privileged
        """Root-like caller: aggregate process lists of MIG-mode GPUs need it, as on hardware."""
        self.initialized = False
        self.calls = 0
        self._structs: dict[int, Any] = {}
        self._devices: dict[int, FakeGpu | FakeMigDevice] = {}
        self._parents: dict[int, FakeGpu] = {}

    if not TYPE_CHECKING:  # to the type checker, the fake has only what it declares

        def __getattr__(self, name: str) -> Any:
            """Constants, structs and error classes come from the real pynvml."""
            if name.startswith(("NVML", "c_nvml", "nvmlClocks", "nvmlEventType", "nvmlMemory_")):
                return getattr(pynvml, name)
            raise AttributeError(name)

    def _ready(self) -> None:
        self.calls += 1
        if not self.initialized:
            raise nvml_error(pynvml.NVML_ERROR_UNINITIALIZED)

    def handle_of(self, device: FakeGpu | FakeMigDevice, parent: FakeGpu | None = None) -> Any:
        """The device's stable handle, a real ``c_nvmlDevice_t``."""
        struct = self._structs.get(id(device))
        if struct is None:
            struct = self._structs[id(device)] = pynvml.struct_c_nvmlDevice_t()
        handle = ctypes.pointer(struct)
        self._devices[address(handle)] = device
        if parent is not None:
            self._parents[address(handle)] = parent
        return handle

    def _device(self, handle: Any) -> FakeGpu | FakeMigDevice:
        self._ready()
        device = self._devices.get(address(handle))
        if device is None:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        parent = device if isinstance(device, FakeGpu) else self._parents[address(handle)]
        if parent.is_lost(self.clock()):
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return device

    def _gpu(self, handle: Any) -> FakeGpu:
        """The whole GPU behind ``handle``; a MIG handle gets ``NotSupported``, as most calls do on hardware."""
        device = self._device(handle)
        if not isinstance(device, FakeGpu):
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return device

    def _mig(self, handle: Any) -> tuple[FakeGpu, FakeMigDevice]:
        device = self._device(handle)
        if not isinstance(device, FakeMigDevice):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._parents[address(handle)], device
