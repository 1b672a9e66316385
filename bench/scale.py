"""Scale: the most servers one exporter polls every second on one core without missing a poll.

The exporter runs as users run it (command line, ``--gpu.simulate h100x8``; ``kind: vllm``, as a
large fleet's configuration names it, which spares a detection per poll), pinned to one CPU, against
N simulated vLLM servers (the recorded body, one engine: 47 KB, live counters, each its own model
name) served by a process on another CPU. A trial passes when, after a warm-up,
``inference_exporter_missed_polls_total`` does not move for the measured span and every server is
up at the end. N is searched by doubling, then by bisection to within 10%.

The baseline is ``bench.fetchloop`` on the same CPU: the same URLs fetched every second with
aiohttp and nothing else (no parsing, deriving or serving), searched the same way. Its limit is the
transport's ceiling, and the ratio says how much of it the exporter keeps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, cpus, spawn
from bench.daemon import Daemon, Upstreams, scratch, write_config
from tests.helpers import stop_process

TARGET = 500
START, CEILING = 250, 2000
PRECISION = 0.10


@dataclass(frozen=True, slots=True)
class Trial:
    """How one run at ``servers`` went."""

    servers: int
    passed: bool
    detail: str


def _missed(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("inference_exporter_missed_polls_total "):
            return float(line.rsplit(" ", 1)[1])
    raise RuntimeError("the exporter serves no inference_exporter_missed_polls_total")


def _up(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("inference_server_up{") and line.endswith(" 1.0"))


def exporter_trial(urls: list[str], seconds: float, cpu: int, tmp: Path) -> Trial:
    """Run the exporter on ``urls`` for a warm-up and ``seconds``; pass if no poll was missed."""
    config = tmp / f"scale-{len(urls)}.yml"
    write_config(config, urls, poll_interval="1s", timeout="800ms", kind="vllm")
    with config.open("a", encoding="utf-8") as file:
        file.write(f"max_connections: {max(100, len(urls))}\n")  # one per server, as a large fleet sets it
    with Daemon(config, cpu=cpu, log=tmp / "exporter.log", ready_timeout=120) as daemon:
        time.sleep(4.0)  # warm-up: connections opened; pacing, the counter below is what is checked
        before = _missed(daemon.get("/metrics", timeout=30))
        time.sleep(seconds)
        text = daemon.get("/metrics", timeout=30)
    missed, up = _missed(text) - before, _up(text)
    return Trial(len(urls), missed == 0 and up == len(urls), f"{missed:g} missed, {up}/{len(urls)} up")


def baseline_trial(urls: list[str], seconds: float, cpu: int) -> Trial:
    """Run ``bench.fetchloop`` on ``urls`` pinned to ``cpu``; pass if no round was late."""
    process = spawn(["bench.fetchloop", "--seconds", str(seconds), *urls], cpu=cpu, capture=True)
    try:
        out, _ = process.communicate(timeout=seconds + 120)
    finally:
        stop_process(process)
    counts = json.loads(out)
    passed = counts["missed"] == 0 and counts["failed"] == 0
    return Trial(len(urls), passed, f"{counts['missed']} missed, {counts['failed']} failed fetches")


def search(run: Callable[[int], Trial], ceiling: int) -> tuple[int, list[Trial]]:
    """The largest N that passes: double from ``START`` until a failure, then bisect to ``PRECISION``."""
    trials: list[Trial] = []
    good, n = 0, START
    while True:
        trials.append(run(n))
        if not trials[-1].passed:
            bad = n
            break
        good = n
        if n >= ceiling:
            return good, trials
        n = min(n * 2, ceiling)
    while bad - good > max(8, good * PRECISION):
        n = (good + bad) // 2
        trials.append(run(n))
        good, bad = (n, bad) if trials[-1].passed else (good, n)
    return good, trials


def run(*, full: bool = False, seconds: float | None = None, baseline: bool = True) -> list[Row]:
    """Search both; the exporter and the baseline each on the last CPU, the servers on the first."""
    seconds = seconds or (30.0 if full else 10.0)
    cpu, upstream_cpu = cpus()[-1], cpus()[0]
    with scratch() as tmp, Upstreams(CEILING, cpu=upstream_cpu, engines=1) as upstreams:
        urls = upstreams.urls
        ours, ours_trials = search(lambda n: exporter_trial(urls[:n], seconds, cpu, Path(tmp)), CEILING)
        base, base_trials = search(lambda n: baseline_trial(urls[:n], seconds, cpu), CEILING) if baseline else (0, [])
    name = "scale: servers polled every 1 s on one core, no poll missed"
    shown = f"≥ {CEILING}" if ours >= CEILING else str(ours)
    base_shown = f"≥ {CEILING}" if base >= CEILING else str(base)
    ratio = f"{ours / base:.0%} of the baseline" if base else "—"
    trials = "; ".join(f"{t.servers}: {t.detail}" for t in ours_trials)
    base_trials_text = "; ".join(f"{t.servers}: {t.detail}" for t in base_trials)
    return [
        Row(name, "largest N (baseline: fetching alone)", shown, base_shown, ratio, f"≥ {TARGET}", ours >= TARGET),
        Row(name, f"exporter trials ({seconds:g} s each)", trials),
        Row(name, "baseline trials", base_trials_text),
    ]


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
