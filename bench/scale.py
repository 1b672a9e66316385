"""Scale: the most servers one exporter polls every second on one core without missing a poll.

The exporter runs as users run it (command line, ``--gpu.simulate h100x8``; ``kind: vllm``, as a
large fleet's configuration names it, which spares a detection per poll), pinned to one CPU,
against N simulated vLLM servers: the recorded body with both engines (82 KB, live counters, a
model name of its own each), served by a swarm of four processes on the other CPU. A trial passes
when, after a warm-up, ``inference_exporter_missed_polls_total`` does not move for the measured
span and every server is up at the end; it also records the exporter's CPU share and its
``inference_exporter_event_loop_lag_seconds``.

N is searched from the target (1,000) down, then by bisection to within 30% (``--full``: up to
2,000 and to within 5%, with 30 s spans rather than 6 s). The baseline is ``bench.fetchloop`` on the same CPU: the
same URLs fetched every second with aiohttp and nothing else (no parsing, deriving or serving),
tried at the exporter's limit and at the target. Its limit is the transport's ceiling, and the
ratio says how much of it the exporter keeps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, cpu_seconds, cpus, sample, spawn
from bench.daemon import Daemon, Upstreams, scratch, write_config
from tests.helpers import stop_process

TARGET = 1000
FLOOR, CEILING = 64, 2000


@dataclass(frozen=True, slots=True)
class Trial:
    """How one run at ``servers`` went."""

    servers: int
    passed: bool
    detail: str


def _up(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("inference_server_up{") and line.endswith(" 1.0"))


def _missed(text: str) -> float:
    value = sample(text, "inference_exporter_missed_polls_total")
    if value is None:
        raise RuntimeError("the exporter serves no inference_exporter_missed_polls_total")
    return value


def exporter_trial(urls: list[str], seconds: float, cpu: int, tmp: Path) -> Trial:
    """Run the exporter on ``urls`` for a warm-up and ``seconds``; pass if no poll was missed.

    It is scraped as Prometheus scrapes it (OpenMetrics, gzip), every ``seconds``: at the start of
    the warm-up, which is as long, and at both ends of the measured span, so that it knows when
    scrapes come and renders for them up front, as it would for Prometheus.
    """
    config = tmp / f"scale-{len(urls)}.yml"
    write_config(config, urls, poll_interval="1s", timeout="800ms", kind="vllm")
    with config.open("a", encoding="utf-8") as file:
        file.write(f"max_connections: {max(100, len(urls))}\n")  # one per server, as a large fleet sets it
    with Daemon(config, cpu=cpu, log=tmp / "exporter.log", ready_timeout=120) as daemon:
        daemon.metrics_like_prometheus()
        time.sleep(seconds)  # warm-up: connections opened; pacing, the counter below is what is checked
        before = _missed(daemon.metrics_like_prometheus())
        started, cpu_before = time.monotonic(), cpu_seconds(daemon.pid)
        time.sleep(seconds)
        share = (cpu_seconds(daemon.pid) - cpu_before) / (time.monotonic() - started)
        text = daemon.metrics_like_prometheus()
    missed, up = _missed(text) - before, _up(text)
    lag = sample(text, "inference_exporter_event_loop_lag_seconds") or 0.0
    detail = f"{missed:g} missed, {up}/{len(urls)} up, {share:.0%} CPU, lag {lag * 1000:.0f} ms"
    return Trial(len(urls), missed == 0 and up == len(urls), detail)


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


def search(run: Callable[[int], Trial], *, start: int, ceiling: int, precision: float) -> tuple[int, list[Trial]]:
    """The largest N that passes: from ``start`` up (doubling, to ``ceiling``) or down (halving), then bisect."""
    trials = [run(start)]
    good, bad = (start, None) if trials[-1].passed else (None, start)
    while good is None or (bad is None and good < ceiling):
        n = max(FLOOR, (bad or 0) // 2) if good is None else min(good * 2, ceiling)
        trials.append(run(n))
        if trials[-1].passed:
            good = n
        else:
            bad = n
        if good is None and n == FLOOR:
            return 0, trials
    while bad is not None and bad - good > max(8, good * precision):
        n = (good + bad) // 2
        trials.append(run(n))
        good, bad = (n, bad) if trials[-1].passed else (good, n)
    return good, trials


def run(*, full: bool = False, seconds: float | None = None) -> list[Row]:
    """Search the exporter's limit, then try the baseline there and at the target."""
    seconds = seconds or (30.0 if full else 6.0)
    ceiling, precision = (CEILING, 0.05) if full else (TARGET, 0.3)
    cpu, upstream_cpu = cpus()[-1], cpus()[0]
    with scratch() as tmp, Upstreams(ceiling, cpu=upstream_cpu, engines=2, processes=4) as upstreams:
        urls = upstreams.urls
        ours, trials = search(
            lambda n: exporter_trial(urls[:n], seconds, cpu, Path(tmp)),
            start=TARGET,
            ceiling=ceiling,
            precision=precision,
        )
        at = sorted({n for n in (ours, TARGET) if n})
        base = {n: baseline_trial(urls[:n], seconds, cpu) for n in at}
    name = "scale: servers polled every 1 s on one core, no poll missed (vLLM, 82 KB bodies)"
    shown = f"≥ {ceiling}" if ours >= ceiling else str(ours)
    base_text = "; ".join(f"{n}: {'keeps up' if t.passed else 'falls behind'} ({t.detail})" for n, t in base.items())
    return [
        Row(
            name,
            "largest N (baseline: fetching alone at the same N)",
            shown,
            base_text,
            target=f"≥ {TARGET}",
            met=ours >= TARGET,
        ),
        Row(name, f"exporter trials ({seconds:g} s each)", "; ".join(f"{t.servers}: {t.detail}" for t in trials)),
    ]


if __name__ == "__main__":
    import sys

    from bench.common import table

    print(table(run(full="--full" in sys.argv)))
