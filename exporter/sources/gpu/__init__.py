"""The node's NVIDIA GPUs through NVML: the only code that talks to NVML.

``source`` reads every GPU (fast and slow values), ``device`` one GPU, ``events`` XID errors on a
thread of their own, ``gpm`` profiling ratios, ``mig`` MIG instances, and ``nvml`` names every NVML
call they make. Only the standard library and ``exporter.model`` are imported, so the hardware check
(``scripts/gpu-smoke.sh``) runs this package on a GPU machine without installing the exporter.
"""

from __future__ import annotations

from exporter.sources.gpu.source import GpuSource, NvmlUnavailable, load_pynvml

__all__ = ["GpuSource", "NvmlUnavailable", "load_pynvml"]
