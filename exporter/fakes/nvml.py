"""A fake of ``pynvml`` for tests and the demo: same function names, structs and error classes.

It sits *below* ``exporter.sources.gpu``: the GPU module receives a ``FakeNvml`` where production
passes the ``pynvml`` module, and runs unchanged. Errors are the real ``pynvml.NVMLError_*`` classes,
raised the way pynvml raises them (``NVMLError(code)``), and structs are pynvml's own ctypes
structures, so a misspelt field fails here as it would on a real GPU.

The simulated GPUs draw power from their load, and their energy counter is the integral of that
power over the injected clock, so energy and power agree in virtual time as they do on hardware.
This module holds the named scenarios (``--gpu.simulate``); the parts live in ``nvml_devices``
(hardware), ``nvml_base`` (handles), ``nvml_api`` (device queries) and ``nvml_extras`` (MIG, GPM,
events).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pynvml

from exporter.fakes.nvml_api import FakeNvml
from exporter.fakes.nvml_base import DRIVER_VERSION
from exporter.fakes.nvml_devices import (
    H100_MEMORY_BYTES,
    H100_NAME,
    MIB,
    FakeGpu,
    FakeMigDevice,
    FakeProcess,
    sine_energy,
    sine_load,
)

__all__ = [
    "DRIVER_VERSION",
    "H100_MEMORY_BYTES",
    "H100_NAME",
    "SCENARIOS",
    "FakeGpu",
    "FakeMigDevice",
    "FakeNvml",
    "FakeProcess",
    "fake_uuid",
    "h100_node",
    "lost_gpu_node",
    "mig_node",
    "no_nvml",
    "old_driver_node",
    "smoke_node",
    "xid_node",
]


def fake_uuid(seed: str, prefix: str = "GPU") -> str:
    """A stable, well-formed GPU (or ``MIG``) UUID derived from ``seed``."""
    h = hashlib.sha256(seed.encode()).hexdigest()
    return f"{prefix}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def h100_node(
    clock: Callable[[], float], count: int = 8, seed: str = "node", load: Callable[[float], float] | None = None
) -> FakeNvml:
    """A node of ``count`` H100 80GB GPUs, all on the same load curve (idle by default)."""
    gpus = [FakeGpu(index=i, uuid=fake_uuid(f"{seed}-{i}"), load=load or (lambda _t: 0.0)) for i in range(count)]
    return FakeNvml(gpus, clock=clock)


def old_driver_node(clock: Callable[[], float], count: int = 2, seed: str = "old") -> FakeNvml:
    """An older driver: no energy counter, no GPM, no instantaneous power, only the old throttle-reason call."""
    nvml = h100_node(clock, count=count, seed=seed)
    nvml.driver_version = "450.51.06"
    for gpu in nvml.gpus:
        gpu.has_energy_counter = False
        gpu.energy_missing_error = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
        gpu.has_gpm = False
        gpu.has_power_instant = False
        gpu.has_clock_event_reasons = False
    return nvml


def no_nvml(clock: Callable[[], float]) -> FakeNvml:
    """A machine without the NVML library: ``nvmlInit`` fails as pynvml fails there."""
    return FakeNvml([], clock=clock, init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def constant(value: float) -> Callable[[float], float]:
    """A load curve that stays at ``value``."""
    return lambda _t: value


MIG_LAYOUT = (("3g.40gb", 2, 3, 40448), ("2g.20gb", 3, 2, 20096), ("1g.10gb", 9, 1, 9984), ("1g.10gb", 10, 1, 9984))
"""(profile, GPU instance id, slices, memory MiB) of the MIG instances in the ``mig`` scenario."""


def mig_node(clock: Callable[[], float], count: int = 2, seed: str = "mig") -> FakeNvml:
    """H100s where GPU 0 is in MIG mode with four instances, each under its own load and processes."""
    nvml = h100_node(clock, count=count, seed=seed, load=lambda _t: 0.4)
    loads = (0.9, 0.5, 0.2, 0.0)
    nvml.gpus[0].mig = [
        FakeMigDevice(
            uuid=fake_uuid(f"{seed}-0-{gi}", prefix="MIG"),
            gpu_instance=gi,
            profile=profile,
            slices=slices,
            memory_total=mib * MIB,
            memory_used=int(mib * MIB * 0.75) if load > 0 else 0,
            load=constant(load),
            processes=[FakeProcess(pid=40000 + gi, used_memory=int(mib * MIB * 0.7))] if load > 0 else [],
        )
        for (profile, gi, slices, mib), load in zip(MIG_LAYOUT, loads, strict=True)
    ]
    nvml.gpus[0].memory_used = sum(m.memory_used for m in nvml.gpus[0].mig)
    return nvml


def xid_node(clock: Callable[[], float], count: int = 4, seed: str = "xid", period: float = 10.0) -> FakeNvml:
    """H100s that raise XID events: XID 31 on GPU 1 every ``period`` seconds, XID 48 on GPU 2 once."""
    nvml = h100_node(clock, count=count, seed=seed, load=lambda _t: 0.6)
    start = clock()
    nvml.xid_schedule = [(start + 2.0 + n * period, 1, 31) for n in range(3600)]
    nvml.xid_schedule.append((start + 3.0, 2, 48))
    nvml.xid_schedule.sort()
    nvml.gpus[2].ecc_uncorrected = 1
    return nvml


def lost_gpu_node(clock: Callable[[], float], count: int = 4, seed: str = "lost") -> FakeNvml:
    """H100s where GPU 2 falls off the bus 20 s after start and comes back 40 s later."""
    nvml = h100_node(clock, count=count, seed=seed, load=lambda _t: 0.5)
    start = clock()
    nvml.gpus[2].lost_between = (start + 20.0, start + 60.0)
    return nvml


SMOKE_LOAD = {"base": 0.5, "swing": 0.35, "period": 20.0}
"""The load curve of the ``smoke`` scenario; its energy counter has a closed form (see ``sine_energy``)."""


def smoke_node(clock: Callable[[], float], start: float | None = None, seed: str = "smoke") -> FakeNvml:
    """One H100 whose readings are pure functions of the clock and ``start``.

    Two processes that build it with the same ``start`` on the same monotonic clock read the same
    values at the same moment: the hardware check's dry run reads it through NVML in one process and
    through a fake ``nvidia-smi`` in another.
    """
    begin = clock() if start is None else start
    gpu = FakeGpu(index=0, uuid=fake_uuid(f"{seed}-0"), memory_used=12 * 1024**3)
    gpu.load = sine_load(begin, **SMOKE_LOAD)
    gpu.energy_integral = sine_energy(gpu, begin, **SMOKE_LOAD)
    return FakeNvml([gpu], clock=clock)


SCENARIOS: dict[str, Callable[[Callable[[], float]], FakeNvml]] = {
    "h100x8": h100_node,
    "old-driver": old_driver_node,
    "none": no_nvml,
    "mig": mig_node,
    "xid": xid_node,
    "lost": lost_gpu_node,
    "smoke": smoke_node,
}
"""Named scenarios, selectable from the command line with ``--gpu.simulate``."""
