"""The fake NVML's MIG, GPM and event calls, with pynvml's names, structs and errors.

MIG: a GPU in MIG mode lists its instances through ``nvmlDeviceGetMigDeviceHandleByIndex``; device
utilization is then ``NotSupported`` and per-instance activity comes only from GPM, as on hardware.
GPM: samples are real ``c_nvmlGpmSample_t`` pointers; ``nvmlGpmMetricsGet`` fills pynvml's
``c_nvmlGpmMetricsGet_t`` from the load between the two samples. Events: ``raise_xid`` queues an XID
for every event set that registered the GPU; ``nvmlEventSetWait_v2`` waits in real time, since it
runs in the exporter's event thread.
"""

from __future__ import annotations

import collections
import ctypes
import threading
from typing import Any

import pynvml

from exporter.fakes.nvml_base import FakeNvmlBase, address, nvml_error
from exporter.fakes.nvml_devices import FakeGpu, FakeMigDevice

GPM_SCALES = {
    pynvml.NVML_GPM_METRIC_SM_UTIL: 100.0,
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: 45.0,
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 70.0,
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: 55.0,
}
"""GPM metric id → its value (percent) at full load; the fake scales it by the load."""
NO_INSTANCE = 0xFFFFFFFF


class MigMixin(FakeNvmlBase):
    """MIG mode and MIG device handles."""

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        gpu = self._gpu(handle)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig is not None else pynvml.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        self._gpu(handle)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        gpu = self._gpu(handle)
        if gpu.mig is None:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(gpu.mig):
            raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
        return self.handle_of(gpu.mig[index], parent=gpu)

    def nvmlDeviceIsMigDeviceHandle(self, handle: Any) -> Any:
        return ctypes.c_uint(int(isinstance(self._device(handle), FakeMigDevice)))

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        return self._mig(handle)[1].gpu_instance

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        return self._mig(handle)[1].compute_instance

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any) -> Any:
        return self.handle_of(self._mig(handle)[0])

    def nvmlDeviceGetAttributes(self, handle: Any) -> Any:
        device = self._device(handle)
        attributes = pynvml.c_nvmlDeviceAttributes()
        if isinstance(device, FakeMigDevice):
            attributes.gpuInstanceSliceCount = device.slices
            attributes.computeInstanceSliceCount = device.slices
            attributes.multiprocessorCount = 16 * device.slices
            attributes.memorySizeMB = device.memory_total // (1024 * 1024)
        else:
            attributes.gpuInstanceSliceCount = 7
            attributes.computeInstanceSliceCount = 7
            attributes.multiprocessorCount = 132
            attributes.memorySizeMB = device.memory_total // (1024 * 1024)
        return attributes

    nvmlDeviceGetAttributes_v2 = nvmlDeviceGetAttributes


class GpmMixin(FakeNvmlBase):
    """GPM: samples, and the metrics between two of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gpm_samples: dict[int, tuple[Any, float, FakeGpu | FakeMigDevice | None]] = {}

    def _gpm_gpu(self, handle: Any) -> FakeGpu:
        gpu = self._gpu(handle)
        if not gpu.has_gpm:
            raise nvml_error(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return gpu

    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> Any:
        gpu = self._gpm_gpu(handle)
        support = pynvml.c_nvmlGpmSupport_t()
        support.version = pynvml.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = 1 if gpu.has_gpm else 0
        return support

    def nvmlGpmSampleAlloc(self) -> Any:
        self._ready()
        struct = pynvml.struct_c_nvmlGpmSample_t()
        sample = ctypes.pointer(struct)
        self._gpm_samples[address(sample)] = (struct, 0.0, None)
        return sample

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        self._ready()
        if self._gpm_samples.pop(address(sample), None) is None:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def _record(self, sample: Any, device: FakeGpu | FakeMigDevice) -> Any:
        entry = self._gpm_samples.get(address(sample))
        if entry is None:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._gpm_samples[address(sample)] = (entry[0], self.clock(), device)
        return sample

    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any:
        gpu = self._gpm_gpu(handle)
        if gpu.mig is not None:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self._record(sample, gpu)

    def nvmlGpmMigSampleGet(self, handle: Any, gpu_instance: int, sample: Any) -> Any:
        gpu = self._gpm_gpu(handle)
        device = next((m for m in gpu.mig or () if m.gpu_instance == gpu_instance), None)
        if device is None:
            raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
        return self._record(sample, device)

    def nvmlGpmMetricsGet(self, metrics: Any) -> Any:
        self._ready()
        first = self._gpm_samples.get(address(metrics.sample1))
        second = self._gpm_samples.get(address(metrics.sample2))
        if first is None or second is None or first[2] is None or first[2] is not second[2] or second[1] <= first[1]:
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        device, t1, t2 = first[2], first[1], second[1]
        load = (device.load(t1) + 4 * device.load((t1 + t2) / 2) + device.load(t2)) / 6  # Simpson's rule
        for i in range(metrics.numMetrics):
            entry = metrics.metrics[i]
            scale = GPM_SCALES.get(entry.metricId)
            entry.nvmlReturn = pynvml.NVML_SUCCESS if scale is not None else pynvml.NVML_ERROR_NOT_SUPPORTED
            entry.value = min(max(load, 0.0), 1.0) * scale if scale is not None else 0.0
        return metrics


class _EventSet:
    def __init__(self) -> None:
        self.struct = pynvml.struct_c_nvmlEventSet_t()
        self.devices: set[int] = set()
        self.queue: collections.deque[Any] = collections.deque()


class EventMixin(FakeNvmlBase):
    """Event sets and XID events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sets: dict[int, _EventSet] = {}
        self._events = threading.Condition()
        self.xid_schedule: list[tuple[float, int, int]] = []
        """(clock time, GPU index, XID) events that fire by themselves once the clock passes them."""

    def nvmlEventSetCreate(self) -> Any:
        self._ready()
        event_set = _EventSet()
        pointer = ctypes.pointer(event_set.struct)
        with self._events:
            self._sets[address(pointer)] = event_set
        return pointer

    def nvmlDeviceGetSupportedEventTypes(self, handle: Any) -> int:
        self._gpu(handle)
        return int(pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeSingleBitEccError)

    def nvmlDeviceRegisterEvents(self, handle: Any, event_types: int, event_set: Any) -> None:
        gpu = self._gpu(handle)
        with self._events:
            target = self._sets.get(address(event_set))
            if target is None:
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            if event_types & pynvml.nvmlEventTypeXidCriticalError:
                target.devices.add(id(gpu))

    def nvmlEventSetWait_v2(self, event_set: Any, timeout_ms: int) -> Any:
        self._ready()
        with self._events:
            target = self._sets.get(address(event_set))
            if target is None:
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            self._fire_scheduled()
            if not self._events.wait_for(lambda: bool(target.queue), timeout_ms / 1000.0):
                raise nvml_error(pynvml.NVML_ERROR_TIMEOUT)
            return target.queue.popleft()

    nvmlEventSetWait = nvmlEventSetWait_v2

    def nvmlEventSetFree(self, event_set: Any) -> None:
        self._ready()
        with self._events:
            if self._sets.pop(address(event_set), None) is None:
                raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            self._events.notify_all()

    def raise_xid(self, index: int, xid: int, gpu_instance: int | None = None) -> None:
        """Raise XID ``xid`` on GPU ``index``: every event set watching it gets one event."""
        gpu = self.gpus[index]
        with self._events:
            for event_set in self._sets.values():
                if id(gpu) in event_set.devices:
                    event_set.queue.append(self._xid_data(gpu, xid, gpu_instance))
            self._events.notify_all()

    def _fire_scheduled(self) -> None:
        now = self.clock()
        while self.xid_schedule and self.xid_schedule[0][0] <= now:
            _, index, xid = self.xid_schedule.pop(0)
            self.raise_xid(index, xid)

    def _xid_data(self, gpu: FakeGpu, xid: int, gpu_instance: int | None) -> Any:
        data = pynvml.c_nvmlEventData_t()
        data.device = self.handle_of(gpu)
        data.eventType = pynvml.nvmlEventTypeXidCriticalError
        data.eventData = xid
        data.gpuInstanceId = NO_INSTANCE if gpu_instance is None else gpu_instance
        data.computeInstanceId = NO_INSTANCE if gpu_instance is None else 0
        return data
