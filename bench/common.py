"""What every benchmark shares: result rows and the table, percentiles, /proc readings, processes, the machine."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import stop_process

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of one benchmark, with the baseline measured in the same run and the ratio between them."""

    benchmark: str
    figure: str
    value: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None
    """Whether the target is met; ``None`` for figures without a target."""


def table(rows: Sequence[Row]) -> str:
    """The rows as one markdown table."""
    head = "| benchmark | figure | ours | baseline | ratio | target | met |\n|---|---|---|---|---|---|---|"
    verdict = {True: "yes", False: "**no**", None: ""}
    lines = [
        f"| {r.benchmark} | {r.figure} | {r.value} | {r.baseline} | {r.ratio} | {r.target} | {verdict[r.met]} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def ms(seconds: float) -> str:
    """Seconds as milliseconds, with precision that suits the size."""
    value = seconds * 1000
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def times(ratio: float) -> str:
    """A ratio such as ``12.5×``."""
    return f"{ratio:.1f}×" if ratio < 100 else f"{ratio:.0f}×"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The middle value."""
    return percentile(values, 50)


# -- /proc --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    """How many file descriptors a process has open, from ``/proc/PID/fd``."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def machine() -> str:
    """One line about where the figures were measured."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model}, {cores} cores, Linux {platform.release()}, Python {platform.python_version()}, "
        f"load average {load} at start"
    )


# -- processes ----------------------------------------------------------------------------------


def cpus() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def spawn(
    args: Sequence[str],
    *,
    cpu: int | None = None,
    log: Path | None = None,
    capture: bool = False,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """Start ``python -m ARGS`` from the repository root, optionally pinned to one CPU.

    ``capture`` pipes its stdout to the caller; otherwise stdout and stderr go to ``log`` (or nowhere).
    ``nice`` lowers its priority: the simulated servers stand in for other machines, and must not
    delay the load generator they share a CPU with.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    output = log.open("ab") if log is not None else None
    try:
        process = subprocess.Popen(
            [PYTHON, "-m", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else output or subprocess.DEVNULL,
            stderr=output or subprocess.DEVNULL,
        )
    finally:
        if output is not None:
            output.close()
    if cpu is not None:  # before the interpreter has started any thread; threads inherit it
        os.sched_setaffinity(process.pid, {cpu})
    if nice:
        os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    return process


@contextlib.contextmanager
def running(
    args: Sequence[str], *, cpu: int | None = None, log: Path | None = None, capture: bool = False, nice: int = 0
) -> Iterator[subprocess.Popen[bytes]]:
    """``spawn`` for the duration of a block."""
    process = spawn(args, cpu=cpu, log=log, capture=capture, nice=nice)
    try:
        yield process
    finally:
        stop_process(process)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample ``name`` in an exposition whose labels include ``labels``."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            head, _, value = line.rpartition(" ")
            if all(part in head for part in wanted):
                return float(value)
    return None
