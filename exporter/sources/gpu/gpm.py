"""GPM (GPU Performance Monitoring, Hopper and newer): profiling ratios through NVML, without DCGM.

Part of the GPU source, used only when ``gpu.gpm`` is enabled. GPM computes a metric between two
samples, so each device (or MIG instance) keeps two sample buffers: every fast-loop read takes a new
sample and reports the ratios since the previous one. The first read of a device reports nothing.
A device without GPM (older GPU or driver) is remembered and not asked again.
"""

from __future__ import annotations

import contextlib
from typing import Any

from exporter.model import GpmMetrics
from exporter.sources.gpu.device import Nvml
from exporter.sources.gpu.nvml import Handle

_METRICS = (
    ("sm_activity_ratio", "NVML_GPM_METRIC_SM_UTIL"),
    ("sm_occupancy_ratio", "NVML_GPM_METRIC_SM_OCCUPANCY"),
    ("tensor_activity_ratio", "NVML_GPM_METRIC_ANY_TENSOR_UTIL"),
    ("dram_bandwidth_utilization_ratio", "NVML_GPM_METRIC_DRAM_BW_UTIL"),
)
"""Our field, pynvml's metric constant (a percentage, 0..100)."""

Key = tuple[str, int | None]
"""(GPU UUID, MIG GPU instance id or ``None`` for the whole GPU)."""


class GpmSampler:
    """Two GPM sample buffers per device, and the metrics between consecutive reads."""

    def __init__(self, nvml: Nvml) -> None:
        self._nvml = nvml
        self._buffers: dict[Key, list[Any]] = {}
        """Per device: [previous sample or None, spare buffer]."""
        self._unsupported: set[str] = set()

    def supported(self, uuid: str, handle: Handle) -> bool:
        """True when the GPU has GPM; asked once per GPU."""
        if uuid in self._unsupported:
            return False
        m = self._nvml.module
        support = self._nvml.optional(m.nvmlGpmQueryDeviceSupport, handle)
        if support is None or not support.isSupportedDevice:
            self._unsupported.add(uuid)
            return False
        return True

    def measure(self, key: Key, handle: Handle) -> GpmMetrics | None:
        """Take a sample of the GPU (or of its MIG instance ``key[1]``); return the ratios since the last one."""
        m = self._nvml.module
        buffers = self._buffers.get(key)
        if buffers is None:
            buffers = self._buffers[key] = [None, m.nvmlGpmSampleAlloc()]
        previous, current = buffers
        try:
            if key[1] is None:
                m.nvmlGpmSampleGet(handle, current)
            else:
                m.nvmlGpmMigSampleGet(handle, key[1], current)
        except self._nvml.skip:
            return None
        buffers[0] = current
        buffers[1] = previous if previous is not None else m.nvmlGpmSampleAlloc()
        return self._metrics(previous, current) if previous is not None else None

    def _metrics(self, first: Any, second: Any) -> GpmMetrics | None:
        m = self._nvml.module
        request = m.c_nvmlGpmMetricsGet_t()
        request.version = m.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(_METRICS)
        request.sample1, request.sample2 = first, second
        for i, (_, constant) in enumerate(_METRICS):
            request.metrics[i].metricId = getattr(m, constant)
        result = self._nvml.optional(m.nvmlGpmMetricsGet, request)
        if result is None:
            return None
        values = {}
        for i, (name, _) in enumerate(_METRICS):
            entry = result.metrics[i]
            if entry.nvmlReturn == m.NVML_SUCCESS:
                values[name] = min(max(float(entry.value) / 100.0, 0.0), 1.0)
        return GpmMetrics(**values)

    def forget(self, keep: set[Key]) -> None:
        """Free the buffers of devices that are gone (a MIG instance destroyed, a GPU lost)."""
        for key in [k for k in self._buffers if k not in keep]:
            self._free(self._buffers.pop(key))

    def close(self) -> None:
        """Free every buffer; call before NVML shuts down."""
        self.forget(set())

    def _free(self, buffers: list[Any]) -> None:
        m = self._nvml.module
        for sample in buffers:
            if sample is not None:
                with contextlib.suppress(m.NVMLError):  # NVML going away: nothing left to free
                    m.nvmlGpmSampleFree(sample)
