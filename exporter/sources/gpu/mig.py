"""Read the MIG layout of a GPU: each instance with its identity, profile, memory and processes.

Part of the GPU source. A MIG instance is its own entity: its memory and processes come from its own
handle, never from the parent. Device utilization does not exist for MIG instances; their activity
comes from GPM (``gpu_gpm``), where the GPU has it.
"""

from __future__ import annotations

import re
from typing import Any

from exporter.model import MigDeviceSample
from exporter.sources.gpu.device import Nvml, memory_info, processes, text
from exporter.sources.gpu.nvml import Handle

_PROFILE = re.compile(r"MIG\s+(\S+)$")


def mig_enabled(nvml: Nvml, handle: Handle) -> bool:
    """True when the GPU runs in MIG mode now (``False`` where MIG is unsupported)."""
    m = nvml.module
    modes = nvml.optional(m.nvmlDeviceGetMigMode, handle)
    return modes is not None and int(modes[0]) == int(m.NVML_DEVICE_MIG_ENABLE)


def read_mig_devices(nvml: Nvml, handle: Handle) -> tuple[MigDeviceSample, ...]:
    """Every MIG instance of a GPU in MIG mode, in NVML's order."""
    m = nvml.module
    count = nvml.optional(m.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
    devices = []
    for slot in range(count):
        try:
            mig = m.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except (m.NVMLError_NotFound, m.NVMLError_InvalidArgument):
            continue  # an empty slot
        devices.append(read_mig_device(nvml, mig))
    return tuple(devices)


def read_mig_device(nvml: Nvml, mig: Any) -> MigDeviceSample:
    """One MIG instance through its own handle."""
    m = nvml.module
    memory = memory_info(nvml, mig)
    return MigDeviceSample(
        uuid=text(m.nvmlDeviceGetUUID(mig)),
        gpu_instance=int(m.nvmlDeviceGetGpuInstanceId(mig)),
        compute_instance=int(m.nvmlDeviceGetComputeInstanceId(mig)),
        profile=profile(nvml, mig),
        memory_used_bytes=float(memory.used) if memory is not None else None,
        memory_total_bytes=float(memory.total) if memory is not None else None,
        processes=processes(nvml, mig),
    )


def profile(nvml: Nvml, mig: Any) -> str:
    """The instance's profile (``1g.10gb``): from its name, else from its slices and memory."""
    m = nvml.module
    match = _PROFILE.search(text(m.nvmlDeviceGetName(mig)))
    if match:
        return match.group(1)
    attributes = nvml.optional(m.nvmlDeviceGetAttributes, mig)
    if attributes is None:
        return ""
    return f"{attributes.gpuInstanceSliceCount}g.{round(attributes.memorySizeMB / 1024)}gb"
