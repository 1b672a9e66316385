"""``FakeNvml``: the device queries of ``pynvml`` over simulated GPUs, plus MIG, GPM and events.

Errors are the real ``pynvml.NVMLError_*`` classes, raised the way pynvml raises them
(``NVMLError(code)``), and structs are pynvml's own ctypes structures, so a misspelt field fails here
as it would on a real GPU.
"""

from __future__ import annotations

from typing import Any

import pynvml

from exporter.fakes.nvml_base import nvml_error
from exporter.fakes.nvml_devices import H100_MEMORY_CLOCK_MHZ, FakeGpu, FakeMigDevice, FakeProcess
from exporter.fakes.nvml_extras import NO_INSTANCE, EventMixin, GpmMixin, MigMixin


class FakeNvml(MigMixin, GpmMixin, EventMixin):
    """Duck-typed ``pynvml``: the functions the exporter calls, with pynvml's constants and errors."""

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise nvml_error(self.init_error)
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

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._ready()
        if not 0 <= index < len(self.gpus):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].is_lost(self.clock()):
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self.handle_of(self.gpus[index])

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> Any:
        self._ready()
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self.gpus:
            if gpu.uuid == text:
                return self.nvmlDeviceGetHandleByIndex(gpu.index)
            for mig in gpu.mig or ():
                if mig.uuid == text:
                    return self.handle_of(mig, parent=gpu)
        raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._device(handle).uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        device = self._device(handle)
        if isinstance(device, FakeMigDevice):
            return f"{self._mig(handle)[0].name} MIG {device.profile}"
        return device.name

    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        return self._gpu(handle).index

    def nvmlDeviceGetMinorNumber(self, handle: Any) -> int:
        return self._gpu(handle).index

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: int | None = None) -> Any:
        device = self._device(handle)
        memory = pynvml.c_nvmlMemory_v2_t() if version else pynvml.c_nvmlMemory_t()
        if version:
            memory.version = version
        memory.total = device.memory_total
        memory.used = device.memory_used
        memory.free = device.memory_total - device.memory_used
        return memory

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any:
        gpu = self._gpu(handle)
        if gpu.mig is not None:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        rates = pynvml.c_nvmlUtilization_t()
        rates.gpu = round(gpu.utilization(self.clock()) * 100)
        rates.memory = round(gpu.utilization(self.clock()) * 60)
        return rates

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return round(self._gpu(handle).power_watts(self.clock()) * 1000)

    def nvmlDeviceGetFieldValues(self, handle: Any, field_ids: list[int]) -> Any:
        gpu = self._gpu(handle)
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        for value, field_id in zip(values, field_ids, strict=True):
            value.fieldId = field_id
            if field_id == pynvml.NVML_FI_DEV_POWER_INSTANT and gpu.has_power_instant:
                value.nvmlReturn = pynvml.NVML_SUCCESS
                value.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = round(gpu.power_watts(self.clock()) * 1000)
            else:
                value.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        gpu = self._gpu(handle)
        if not gpu.has_energy_counter:
            raise nvml_error(gpu.energy_missing_error)
        return int(gpu.energy_mj(self.clock()))

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        gpu = self._gpu(handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature(self.clock())

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        gpu = self._gpu(handle)
        if clock_type in (pynvml.NVML_CLOCK_SM, pynvml.NVML_CLOCK_GRAPHICS):
            return round(gpu.sm_clock_mhz(self.clock()))
        if clock_type == pynvml.NVML_CLOCK_MEM:
            return round(H100_MEMORY_CLOCK_MHZ)
        raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        gpu = self._gpu(handle)
        if not gpu.has_clock_event_reasons:
            raise nvml_error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return gpu.clock_events(self.clock())

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:
        return self._gpu(handle).clock_events(self.clock())

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return round(self._gpu(handle).max_watts * 1000)

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return round(self._gpu(handle).max_watts * 1000)

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter_type: int) -> int:
        gpu = self._gpu(handle)
        if counter_type not in (pynvml.NVML_VOLATILE_ECC, pynvml.NVML_AGGREGATE_ECC):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return gpu.ecc_corrected
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            return gpu.ecc_uncorrected
        raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        device = self._device(handle)
        if isinstance(device, FakeMigDevice):
            return [_process_info(p, device.gpu_instance, device.compute_instance) for p in device.processes]
        if device.mig is None:
            return [_process_info(p, p.gpu_instance, p.compute_instance) for p in device.processes]
        if not self.privileged:
            raise nvml_error(pynvml.NVML_ERROR_NO_PERMISSION)
        return [_process_info(p, m.gpu_instance, m.compute_instance) for m in device.mig for p in m.processes]

    nvmlDeviceGetComputeRunningProcesses_v3 = nvmlDeviceGetComputeRunningProcesses


def _process_info(process: FakeProcess, gpu_instance: int | None, compute_instance: int | None) -> Any:
    """What pynvml returns for one process: a friendly object made from ``c_nvmlProcessInfo_t``."""
    info = pynvml.c_nvmlProcessInfo_t()
    info.pid = process.pid
    info.usedGpuMemory = process.used_memory if process.used_memory is not None else 0
    info.gpuInstanceId = NO_INSTANCE if gpu_instance is None else gpu_instance
    info.computeInstanceId = NO_INSTANCE if compute_instance is None else compute_instance
    obj = pynvml.nvmlStructToFriendlyObject(info)
    if process.used_memory is None:
        obj.usedGpuMemory = None
    return obj


__all__ = ["FakeGpu", "FakeNvml"]
