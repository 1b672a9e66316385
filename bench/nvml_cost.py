"""NVML cost: CPU and wall time of the exporter's GPU reads on real GPUs, against the fake NVML it is tested on.

``python -m bench.nvml_cost`` needs an NVIDIA driver (without one it says so and measures the fake
only). It times ``GpuSource.read_fast`` (the fast loop, every second by default) and ``read_slow``
(processes, ECC, power limit: the slow loop) per GPU, and each NVML call they make on GPU 0. The
baseline is the same reads through ``exporter.fakes.nvml`` (an 8-GPU node), the stand-in the other
benchmarks run on: the ratio says how far the fake's cost is from a real GPU's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

FAST_INTERVAL = 1.0


def _timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Mean wall and CPU seconds of ``call``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def time_reads(nvml: Any, repeats: int) -> dict[str, float]:
    """Per GPU: wall and CPU seconds of one fast read and one slow read through ``GpuSource``."""
    from exporter.sources.gpu import GpuSource

    source = GpuSource(nvml=nvml)
    source.start()
    try:
        gpus = len(source.read().gpus) or 1
        fast_wall, fast_cpu = _timed(source.read_fast, repeats)
        slow_wall, slow_cpu = _timed(source.read_slow, max(1, repeats // 4))
    finally:
        source.close()
    return {
        "gpus": gpus,
        "fast_wall": fast_wall / gpus,
        "fast_cpu": fast_cpu / gpus,
        "slow_wall": slow_wall / gpus,
        "slow_cpu": slow_cpu / gpus,
    }


def time_calls(m: Any, repeats: int) -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of each NVML call the reads make, on GPU 0 (calls the GPU lacks are left out)."""
    m.nvmlInit()
    try:
        handle = m.nvmlDeviceGetHandleByIndex(0)
        calls: dict[str, Callable[[], object]] = {
            "nvmlDeviceGetHandleByIndex": lambda: m.nvmlDeviceGetHandleByIndex(0),
            "nvmlDeviceGetUUID": lambda: m.nvmlDeviceGetUUID(handle),
            "nvmlDeviceGetName": lambda: m.nvmlDeviceGetName(handle),
            "nvmlDeviceGetUtilizationRates": lambda: m.nvmlDeviceGetUtilizationRates(handle),
            "nvmlDeviceGetMemoryInfo": lambda: m.nvmlDeviceGetMemoryInfo(handle),
            "nvmlDeviceGetFieldValues(POWER_INSTANT)": lambda: m.nvmlDeviceGetFieldValues(
                handle, [m.NVML_FI_DEV_POWER_INSTANT]
            ),
            "nvmlDeviceGetPowerUsage": lambda: m.nvmlDeviceGetPowerUsage(handle),
            "nvmlDeviceGetTotalEnergyConsumption": lambda: m.nvmlDeviceGetTotalEnergyConsumption(handle),
            "nvmlDeviceGetTemperature": lambda: m.nvmlDeviceGetTemperature(handle, m.NVML_TEMPERATURE_GPU),
            "nvmlDeviceGetClockInfo(SM)": lambda: m.nvmlDeviceGetClockInfo(handle, m.NVML_CLOCK_SM),
            "nvmlDeviceGetCurrentClocksEventReasons": lambda: m.nvmlDeviceGetCurrentClocksEventReasons(handle),
            "nvmlDeviceGetComputeRunningProcesses": lambda: m.nvmlDeviceGetComputeRunningProcesses(handle),
            "nvmlDeviceGetEnforcedPowerLimit": lambda: m.nvmlDeviceGetEnforcedPowerLimit(handle),
            "nvmlDeviceGetTotalEccErrors": lambda: m.nvmlDeviceGetTotalEccErrors(
                handle, m.NVML_MEMORY_ERROR_TYPE_CORRECTED, m.NVML_VOLATILE_ECC
            ),
        }
        out = {}
        for name, call in calls.items():
            try:
                call()
            except Exception:  # not supported on this GPU or driver: leave it out
                continue
            out[name] = _timed(call, repeats)
        return out
    finally:
        m.nvmlShutdown()


def real_nvml() -> Any | None:
    """``pynvml`` when a driver answers, else ``None``."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception:  # no library, no driver: the fake alone is measured
        return None
    return pynvml


def measure(repeats: int) -> dict[str, Any]:
    """Everything, as one JSON-friendly dict."""
    from exporter.fakes.nvml import h100_node

    result: dict[str, Any] = {"fake": time_reads(h100_node(time.monotonic, count=8), repeats)}
    m = real_nvml()
    if m is not None:
        m.nvmlInit()
        result["driver"] = str(m.nvmlSystemGetDriverVersion())
        result["gpu"] = str(m.nvmlDeviceGetName(m.nvmlDeviceGetHandleByIndex(0)))
        result["gpus"] = int(m.nvmlDeviceGetCount())
        m.nvmlShutdown()
        result["calls"] = time_calls(m, repeats)
        result["real"] = time_reads(m, repeats)
    return result


def rows(result: dict[str, Any]) -> list[Any]:
    """The table rows: per-GPU read cost, real against fake, and the fast loop's share of a core."""
    from bench.common import Row, ms, times

    fake, real = result["fake"], result.get("real")
    if real is None:
        return [Row("NVML (real GPU)", "per-GPU fast read", "no NVIDIA driver here", ms(fake["fast_cpu"]))]
    name = f"NVML on {result['gpu']} (driver {result['driver']}), per GPU"
    out = []
    for loop in ("fast", "slow"):
        for kind in ("cpu", "wall"):
            key = f"{loop}_{kind}"
            figure = f"{loop} read, {'CPU' if kind == 'cpu' else 'wall'} time (baseline: the fake NVML)"
            out.append(Row(name, figure, ms(real[key]), ms(fake[key]), times(real[key] / fake[key])))
    share = real["fast_cpu"] * 8 / FAST_INTERVAL
    out.append(Row(name, "8 GPUs read every second: share of one core", f"{share:.2%}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures here")
    args = parser.parse_args()
    result = measure(args.repeats)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=2)
    from bench.common import table

    print(table(rows(result)))
    for name, (wall, cpu) in result.get("calls", {}).items():
        print(f"{name:45s} wall {wall * 1e6:9.1f} µs   CPU {cpu * 1e6:9.1f} µs")


if __name__ == "__main__":
    main()
