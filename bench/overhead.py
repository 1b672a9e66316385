"""Overhead: CPU seconds per hour and RSS of the running exporter, against an idle interpreter with its imports.

Two exporters run as users run them (the command line, ``--gpu.simulate h100x8``), one at a 1 s poll
interval (the target's) and one at the default 5 s, each against the same 8 simulated vLLM servers,
one per GPU (the recorded body with one engine: 47 KB, live counters, full histograms), and each
scraped every 15 s as Prometheus scrapes (OpenMetrics, gzip), from the start of a warm-up of one
scrape interval (so the measured span is past the first interval, which the exporter must learn
before it renders only for the scrapes it expects). The baseline is ``bench.idle``: the
same interpreter and imports, idle in an event loop. All three are pinned to the same CPU and
measured over the same minutes from ``/proc``; the simulated servers run in a fourth process on
another CPU.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, cpu_seconds, cpus, rss_bytes, running, times
from bench.daemon import Daemon, Upstreams, scratch, write_config

CPU_TARGET = 0.01
"""Share of one core."""
RSS_TARGET = 60e6
SCRAPE_INTERVAL = 15.0


@dataclass
class Usage:
    """What a process used over the measured span."""

    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    rss_peak: int = 0
    rss_end: int = 0

    @property
    def core_share(self) -> float:
        return self.cpu_seconds / self.wall_seconds

    @property
    def per_hour(self) -> float:
        return self.core_share * 3600


POLLS = ("1s", "5s")
"""The target's 1 s poll interval, and the default 5 s one, measured side by side."""


def measure(seconds: float, servers: int = 8) -> tuple[dict[str, Usage], Usage, dict[str, dict[str, float]]]:
    """Run an exporter per poll interval and the idle baseline side by side; return their usage and checks."""
    exporter_cpu, upstream_cpu = cpus()[-1], cpus()[0]
    with scratch() as tmp, Upstreams(servers, cpu=upstream_cpu, engines=1) as upstreams:
        daemons = {}
        with contextlib.ExitStack() as stack:
            for poll in POLLS:
                config = Path(tmp) / f"config-{poll}.yml"
                write_config(config, upstreams.urls, poll_interval=poll)
                daemons[poll] = stack.enter_context(Daemon(config, cpu=exporter_cpu, log=Path(tmp) / f"{poll}.log"))
            idle = stack.enter_context(running(["bench.idle"], cpu=exporter_cpu))
            for daemon in daemons.values():  # the scrapes begin with the warm-up, as after a restart
                daemon.scrape_like_prometheus()
            time.sleep(SCRAPE_INTERVAL)  # warm-up: connections opened, windows filling, the scrape interval learned
            usage = _span(daemons, idle.pid, seconds)
            checks = {poll: _checks(daemon, servers) for poll, daemon in daemons.items()}
    base = usage.pop("baseline")
    return usage, base, checks


def _span(daemons: dict[str, Daemon], idle_pid: int, seconds: float) -> dict[str, Usage]:
    pids = {**{poll: daemon.pid for poll, daemon in daemons.items()}, "baseline": idle_pid}
    usage = {name: Usage() for name in pids}
    start_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    next_scrape = started
    while (now := time.monotonic()) < started + seconds:
        if now >= next_scrape:
            for daemon in daemons.values():
                daemon.scrape_like_prometheus()
            next_scrape += SCRAPE_INTERVAL
        for name, pid in pids.items():
            usage[name].rss_peak = max(usage[name].rss_peak, rss_bytes(pid))
        time.sleep(1.0)  # pacing, not synchronization: sample RSS once a second
    wall = time.monotonic() - started
    for name, pid in pids.items():
        usage[name].cpu_seconds = cpu_seconds(pid) - start_cpu[name]
        usage[name].wall_seconds = wall
        usage[name].rss_end = rss_bytes(pid)
        usage[name].rss_peak = max(usage[name].rss_peak, usage[name].rss_end)
    return usage


def _checks(daemon: Daemon, servers: int) -> dict[str, float]:
    text = daemon.metrics()
    up = sum(1 for line in text.splitlines() if line.startswith("inference_server_up{") and line.endswith(" 1.0"))
    missed = next(
        (float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("inference_exporter_missed")),
        float("nan"),
    )
    return {"servers up": up, "servers": servers, "missed polls": missed}


def rows(usage: dict[str, Usage], base: Usage, checks: dict[str, dict[str, float]]) -> list[Row]:
    """CPU and RSS rows per poll interval, with their targets."""
    out = []
    for poll, ours in usage.items():
        check = checks[poll]
        default = " (the default)" if poll == "5s" else ""
        name = f"overhead: 8 GPUs, {check['servers']:.0f} servers, {poll} poll{default}, {ours.wall_seconds:.0f} s"
        cpu_ratio = ours.cpu_seconds / base.cpu_seconds if base.cpu_seconds > 0 else float("inf")
        out += [
            Row(
                name,
                "CPU seconds per hour (share of one core)",
                f"{ours.per_hour:.1f} s ({ours.core_share:.2%})",
                f"{base.per_hour:.1f} s ({base.core_share:.2%})",
                times(cpu_ratio) if base.cpu_seconds > 0 else "—",
                f"< {CPU_TARGET * 3600:.0f} s (1%)",
                ours.core_share < CPU_TARGET,
            ),
            Row(
                name,
                "RSS, peak",
                f"{ours.rss_peak / 1e6:.1f} MB",
                f"{base.rss_peak / 1e6:.1f} MB",
                times(ours.rss_peak / base.rss_peak),
                f"< {RSS_TARGET / 1e6:.0f} MB",
                ours.rss_peak < RSS_TARGET,
            ),
            Row(
                name,
                "servers up at the end, missed polls",
                f"{check['servers up']:.0f}/{check['servers']:.0f}, {check['missed polls']:g}",
                met=check["servers up"] == check["servers"] and not check["missed polls"] > 0,
            ),
        ]
    return out


def run(*, full: bool = False, seconds: float | None = None) -> list[Row]:
    """45 s by default (to keep ``make bench`` short; re-run to confirm), ten minutes with ``full``."""
    usage, base, checks = measure(seconds or (600.0 if full else 45.0))
    return rows(usage, base, checks)


if __name__ == "__main__":
    import sys

    from bench.common import table

    print(table(run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else None)))
