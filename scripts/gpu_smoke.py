"""Check the exporter's GPU readings against ``nvidia-smi`` on a machine with real NVIDIA GPUs.

Run through ``scripts/gpu-smoke.sh``. For about 60 seconds it reads every GPU with the exporter's own
GPU module (``exporter.sources.gpu``, unchanged) and, at the same moments, with
``nvidia-smi --query-gpu``: each ``nvidia-smi`` call is bracketed by two reads of ours, and the
``nvidia-smi`` value must lie within the range of the two plus a stated tolerance. Energy is checked
over the whole run: the growth of NVML's energy counter against ``nvidia-smi``'s power integrated
over time. If PyTorch with CUDA is importable, a second process puts GPU 0 under a matmul load in
phases (idle, busy, idle, busy) so the readings move. The script only reads: it never changes a
GPU setting.

It needs nothing beyond the exporter's GPU module, ``nvidia-ml-py`` and the standard library.
``--dry-run`` runs the same comparison against the fake NVML's ``smoke`` node and a fake
``nvidia-smi`` that reads the same fake state from another process. Exit codes: 0 every check
passed, 1 a check failed, 2 the check could not run (no NVML, no ``nvidia-smi``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.model import GpuReading, GpuSample
from exporter.sources.gpu import GpuSource, NvmlUnavailable

MIB = 1024 * 1024
LOAD_PROGRAM = r"""
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
start, end = time.monotonic(), time.monotonic() + float(sys.argv[1])
print("load ready", flush=True)
while time.monotonic() < end:
    phase = (time.monotonic() - start) % 30.0
    if 8.0 <= phase < 26.0:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize()
    else:
        time.sleep(0.05)
"""


@dataclass(frozen=True)
class Check:
    """One value compared at each sample: ours, nvidia-smi's field, and the tolerance."""

    name: str
    fields: tuple[str, ...]
    """nvidia-smi fields to try, best first (the first one this driver knows is used)."""
    unit: str
    ours: Callable[[GpuSample], float | None]
    absolute: float
    relative: float = 0.0

    def tolerance(self, value: float) -> float:
        return max(self.absolute, self.relative * abs(value))


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


CHECKS = (
    Check("utilization", ("utilization.gpu",), "%", lambda g: _scaled(g.utilization_ratio, 100), 10.0),
    Check("memory used", ("memory.used",), "MiB", lambda g: _scaled(g.memory_used_bytes, 1 / MIB), 64.0, 0.01),
    Check("memory total", ("memory.total",), "MiB", lambda g: _scaled(g.memory_total_bytes, 1 / MIB), 1.0),
    Check("power", ("power.draw.instant", "power.draw"), "W", lambda g: g.power_watts, 30.0, 0.15),
    Check("power limit", ("enforced.power.limit",), "W", lambda g: g.power_limit_watts, 1.0),
    Check("temperature", ("temperature.gpu",), "C", lambda g: g.temperature_celsius, 3.0),
    Check("sm clock", ("clocks.sm",), "MHz", lambda g: _scaled(g.sm_clock_hertz, 1e-6), 100.0, 0.10),
    Check("memory clock", ("clocks.mem",), "MHz", lambda g: _scaled(g.memory_clock_hertz, 1e-6), 50.0, 0.02),
)
ENERGY_TOLERANCE = 0.10
"""Energy counter growth against nvidia-smi's power integrated over the run: within 10 %."""


@dataclass
class Result:
    """The outcome of one check over the run."""

    samples: int = 0
    failures: list[str] = field(default_factory=list)
    worst: float = 0.0
    """Largest distance outside our bracketing readings seen, in the check's unit."""


class NvidiaSmi:
    """Runs ``nvidia-smi --query-gpu`` and parses its CSV."""

    def __init__(self, command: str) -> None:
        self.command = command

    def query(self, fields: list[str]) -> list[dict[str, str]] | None:
        """One row per GPU, or ``None`` when nvidia-smi rejects a field."""
        result = subprocess.run(
            [self.command, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            return None
        return [
            dict(zip(fields, (v.strip() for v in line.split(",")), strict=True)) for line in result.stdout.splitlines()
        ]

    def pick_fields(self) -> dict[str, str]:
        """For each check, the first of its fields this nvidia-smi knows."""
        chosen = {}
        for check in CHECKS:
            for name in check.fields:
                if self.query([name]) is not None:
                    chosen[check.name] = name
                    break
        return chosen


def number(text: str) -> float | None:
    """A number from nvidia-smi's CSV (``[N/A]`` and friends are ``None``)."""
    try:
        return float(text)
    except ValueError:
        return None


def compare(check: Check, before: GpuSample, after: GpuSample, smi: float | None, result: Result) -> str:
    """Judge one sample; return the table cell ``ours|smi``."""
    values = [v for v in (check.ours(before), check.ours(after)) if v is not None]
    if smi is None or not values:
        return f"{'-' if not values else values[-1]:>7}|{'-' if smi is None else smi:<7}"
    low, high = min(values), max(values)
    outside = max(low - smi, smi - high, 0.0)
    result.samples += 1
    result.worst = max(result.worst, outside)
    mark = " "
    if outside > check.tolerance(smi):
        result.failures.append(f"ours {low:g}..{high:g} vs nvidia-smi {smi:g} {check.unit}")
        mark = "!"
    return f"{(low + high) / 2:>7.1f}|{smi:<7.1f}{mark}"


def start_load(duration: float) -> subprocess.Popen[str] | None:
    """Put GPU 0 under a phased matmul load in another process, if PyTorch with CUDA is there."""
    probe = subprocess.run(
        [sys.executable, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        print("no load: PyTorch with CUDA is not importable; readings are compared at rest")
        return None
    process = subprocess.Popen([sys.executable, "-c", LOAD_PROGRAM, str(duration)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()  # "load ready": the tensors are allocated
    print("load: PyTorch matmuls on GPU 0, busy 18 s of every 30 s")
    return process


def by_index(reading: GpuReading) -> dict[int, GpuSample]:
    return {g.index: g for g in reading.gpus}


def run(source: GpuSource, smi: NvidiaSmi, duration: float, interval: float) -> int:
    """Sample until ``duration`` is over, print the table and the verdict; return the exit code."""
    fields = smi.pick_fields()
    columns = [c for c in CHECKS if c.name in fields]
    missing = [c.name for c in CHECKS if c.name not in fields]
    if missing:
        print(f"nvidia-smi lacks fields for: {', '.join(missing)} (not compared)")
    query = ["index", *(fields[c.name] for c in columns)]
    has_average = smi.query(["power.draw"]) is not None
    results = {c.name: Result() for c in columns}
    print("time  gpu " + " ".join(f"{c.name[:15]:>16}" for c in columns) + "   (ours|nvidia-smi)")
    energy = Energy()
    began = time.monotonic()
    while time.monotonic() - began < duration:
        tick = time.monotonic()
        before = by_index(source.read_fast())
        rows = smi.query(query + (["power.draw"] if has_average else []))
        after = by_index(source.read_fast())
        for row in rows or []:
            index = int(row["index"])
            if index not in before or index not in after:
                continue
            cells = [
                compare(c, before[index], after[index], number(row[fields[c.name]]), results[c.name]) for c in columns
            ]
            print(f"{tick - began:4.0f}s {index:>3} " + " ".join(cells))
            energy.add(index, tick, before[index], after[index], number(row.get("power.draw", "")))
        time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    return _verdict(columns, results, energy.verdict())


@dataclass
class Energy:
    """Per GPU: our energy counter at the first and last sample, and nvidia-smi's power summed between.

    ``power.draw`` is the average over the second before it was read (Ampere and newer), and samples are
    about a second apart, so each reading times the time since the previous sample is that stretch's energy.
    """

    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    integral: dict[int, float] = field(default_factory=dict)
    power: dict[int, tuple[float, float]] = field(default_factory=dict)
    missing: set[int] = field(default_factory=set)

    def add(self, index: int, t: float, before: GpuSample, after: GpuSample, watts: float | None) -> None:
        """One sample: our counter (mean of the two bracketing reads) and nvidia-smi's average power."""
        if before.energy_joules is None or after.energy_joules is None or watts is None:
            self.missing.add(index)
            return
        joules = (before.energy_joules + after.energy_joules) / 2
        self.first.setdefault(index, joules)
        self.last[index] = joules
        if index in self.power:
            # power.draw is the average over the last second: it stands for the time since the previous sample
            t0, _ = self.power[index]
            self.integral[index] = self.integral.get(index, 0.0) + watts * (t - t0)
        self.power[index] = (t, watts)

    def verdict(self) -> bool:
        """Print the energy comparison per GPU; ``True`` when every GPU is within tolerance."""
        ok = True
        for index in sorted(self.missing - set(self.integral)):
            print(f"energy gpu {index}: no energy counter or no power.draw here: not compared")
        for index, joules in sorted(self.integral.items()):
            counted = self.last[index] - self.first[index]
            relative = abs(counted - joules) / joules if joules > 0 else 0.0
            passed = relative <= ENERGY_TOLERANCE
            ok = ok and passed
            print(
                f"energy gpu {index}: counter grew {counted:.0f} J, nvidia-smi power integrated {joules:.0f} J "
                f"({relative:.1%} apart, tolerance {ENERGY_TOLERANCE:.0%}) {'PASS' if passed else 'FAIL'}"
            )
        return ok


def _verdict(columns: list[Check], results: dict[str, Result], energy_ok: bool) -> int:
    print("\ncheck            samples  worst outside  tolerance            verdict")
    ok = energy_ok
    for check in columns:
        result = results[check.name]
        passed = not result.failures and result.samples > 0
        ok = ok and passed
        tolerance = f"±{check.absolute:g} {check.unit}" + (f" or {check.relative:.0%}" if check.relative else "")
        print(
            f"{check.name:<16} {result.samples:>7}  {result.worst:>10.1f} {check.unit:<3} {tolerance:<20} "
            f"{'PASS' if passed else 'FAIL'}"
        )
        for failure in result.failures[:3]:
            print(f"    {failure}")
    print("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    return 0 if ok else 1


def dry_run_setup(workdir: Path) -> tuple[Any, str]:
    """The fake ``smoke`` node and a fake ``nvidia-smi`` (on PATH in ``workdir``) that reads the same state."""
    from exporter.fakes.nvidia_smi import START_ENV
    from exporter.fakes.nvml import smoke_node

    start = time.monotonic()
    os.environ[START_ENV] = repr(start)
    fake = workdir / "nvidia-smi"
    fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m exporter.fakes.nvidia_smi "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    return smoke_node(time.monotonic, start=start), str(fake)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sampling (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1)")
    parser.add_argument("--no-load", action="store_true", help="do not start the PyTorch load")
    parser.add_argument("--dry-run", action="store_true", help="run against the fake NVML and a fake nvidia-smi")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as workdir:
        nvml, command = dry_run_setup(Path(workdir)) if args.dry_run else (None, shutil.which("nvidia-smi") or "")
        if not command:
            print("nvidia-smi is not on PATH: nothing to compare with", file=sys.stderr)
            return 2
        source = GpuSource(nvml=nvml)
        try:
            driver = source.start()
        except NvmlUnavailable as exc:
            print(exc, file=sys.stderr)
            return 2
        load = None if args.dry_run or args.no_load else start_load(args.duration + 30)
        try:
            slow = source.read_slow()
            names = ", ".join(f"{g.index}: {g.name}" for g in slow.gpus)
            print(f"driver {driver}; GPUs {names}; {args.duration:g} s, a sample every {args.interval:g} s")
            return run(source, NvidiaSmi(command), args.duration, args.interval)
        finally:
            if load is not None:
                load.kill()
                load.wait()
            source.close()


if __name__ == "__main__":
    sys.exit(main())
