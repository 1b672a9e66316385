"""A fake ``nvidia-smi --query-gpu`` over the fake NVML's ``smoke`` scenario, for the hardware check's dry run.

``python -m exporter.fakes.nvidia_smi --query-gpu=FIELDS --format=csv,noheader,nounits`` prints one
CSV line per GPU, as ``nvidia-smi`` does. It builds the ``smoke`` node with the start time in
``$ITE_FAKE_SMOKE_START`` on the system's monotonic clock, so it reads exactly what the exporter's
GPU module reads from the same node in another process at the same moment. Unknown fields fail as
``nvidia-smi`` fails (exit code 2 and a message). ``$ITE_FAKE_SMOKE_SKEW`` (``field=delta,...``) adds
to fields, so a test can show that the hardware check notices a disagreement.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence

from exporter.fakes.nvml import smoke_node
from exporter.fakes.nvml_devices import H100_MEMORY_CLOCK_MHZ, FakeGpu

MIB = 1024 * 1024
START_ENV = "ITE_FAKE_SMOKE_START"
SKEW_ENV = "ITE_FAKE_SMOKE_SKEW"


def _average_power(gpu: FakeGpu, now: float) -> float:
    """``power.draw`` on Ampere and newer: the average over the last second (from the energy counter)."""
    return (gpu.energy_mj(now) - gpu.energy_mj(now - 1.0)) / 1000.0


FIELDS: dict[str, Callable[[FakeGpu, float], str]] = {
    "index": lambda g, _t: str(g.index),
    "uuid": lambda g, _t: g.uuid,
    "name": lambda g, _t: g.name,
    "utilization.gpu": lambda g, t: str(round(g.utilization(t) * 100)),
    "memory.used": lambda g, _t: str(g.memory_used // MIB),
    "memory.total": lambda g, _t: str(g.memory_total // MIB),
    "power.draw": lambda g, t: f"{_average_power(g, t):.2f}",
    "power.draw.instant": lambda g, t: f"{g.power_watts(t):.2f}",
    "enforced.power.limit": lambda g, _t: f"{g.max_watts:.2f}",
    "temperature.gpu": lambda g, t: str(g.temperature(t)),
    "clocks.sm": lambda g, t: str(round(g.sm_clock_mhz(t))),
    "clocks.mem": lambda _g, _t: str(round(H100_MEMORY_CLOCK_MHZ)),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Answer one ``--query-gpu`` like ``nvidia-smi``."""
    args = list(sys.argv[1:] if argv is None else argv)
    query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
    if query is None:
        print("only --query-gpu=FIELDS --format=csv,noheader,nounits is simulated", file=sys.stderr)
        return 2
    fields = [f.strip() for f in query.split(",")]
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        print(f'Field "{unknown[0]}" is not a valid field to query.', file=sys.stderr)
        return 2
    nvml = smoke_node(time.monotonic, start=float(os.environ[START_ENV]))
    skew = _skew(os.environ.get(SKEW_ENV, ""))
    now = time.monotonic()
    for gpu in nvml.gpus:
        values = [FIELDS[f](gpu, now) for f in fields]
        print(", ".join(f"{float(v) + skew[f]:g}" if f in skew else v for f, v in zip(fields, values, strict=True)))
    return 0


def _skew(text: str) -> dict[str, float]:
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {name.strip(): float(delta) for name, delta in pairs}


if __name__ == "__main__":
    sys.exit(main())
