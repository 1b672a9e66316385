"""Profile the event loop's steps: what a scrape arriving at a random moment would wait for.

    python -m bench.steps                       # 64 servers (82 KB bodies) polled every 1 s, for 15 s
    python -m bench.steps --servers 500 --seconds 20

Scrapes share the event loop with polling and publishing, so a scrape waits for the step the loop
is running when it arrives (and for what is queued before it). This runs the exporter's real service
in this process (poll loop, compose, publish, status history, the 8-GPU fake node) against a swarm
of simulated vLLM servers in processes of their own, with a Prometheus-like scraper asking for
OpenMetrics and gzip every second, and times every step the loop runs. It prints the steps of 0.5 ms
and longer by where they ran (the coroutine and the lines it ran between), and the share of the
run's time the loop spent in each, how long each turn of the loop took (its ready callbacks together:
what a scrape arriving in it waits for), and the garbage collections.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.daemon import Upstreams, scratch, write_config
from exporter import logging as exporter_logging
from exporter.config import load_config
from exporter.exposition.cache import Variant
from exporter.fakes.nvml import SCENARIOS
from exporter.serve.service import Service, gpu_source
from exporter.sources.servers import adapter_kinds

LONG = 0.0005


@dataclass
class Steps:
    """Durations of the loop's long steps by where they ran, and of garbage collections by generation."""

    by_where: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    collections: dict[int, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    turns: list[float] = field(default_factory=list)
    """Per turn of the loop (one pass over the callbacks ready), the time its callbacks took together."""
    longest: list[tuple[float, list[tuple[str, float]]]] = field(default_factory=list)
    """The longest turns, with the steps of 0.2 ms or more they ran."""
    total: float = 0.0
    _turn: float = 0.0
    _held: list[tuple[str, float]] = field(default_factory=list)


def _where(callback: Any) -> str:
    owner = getattr(callback, "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return getattr(callback, "__qualname__", type(callback).__name__)
    frames, coro = [], owner.get_coro()
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        frames.append(f"{coro.cr_frame.f_code.co_name}:{coro.cr_frame.f_lineno}")
        coro = getattr(coro, "cr_await", None)
    return " > ".join(frames[-2:]) or "(done)"


@contextmanager
def timing_steps() -> Iterator[Steps]:
    """Time every step (``Handle._run``) and every collection while the block runs."""
    steps = Steps()
    original, original_turn = asyncio.events.Handle._run, asyncio.base_events.BaseEventLoop._run_once
    started: dict[str, float] = {}

    def turn(loop: asyncio.base_events.BaseEventLoop) -> None:
        steps._turn, steps._held = 0.0, []
        original_turn(loop)
        if steps._turn:
            steps.turns.append(steps._turn)
            if len(steps.longest) < 8 or steps._turn > steps.longest[-1][0]:
                steps.longest = sorted([*steps.longest, (steps._turn, steps._held)], key=lambda t: -t[0])[:8]

    def run(handle: asyncio.Handle) -> None:
        before = _where(handle._callback)  # type: ignore[attr-defined]
        begun = time.perf_counter()
        original(handle)
        took = time.perf_counter() - begun
        steps.total += took
        steps._turn += took
        if took >= 0.0002:
            where = f"{before}  →  {_where(handle._callback)}"  # type: ignore[attr-defined]
            steps._held.append((where, took))
            if took >= LONG:
                steps.by_where[where].append(took)

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["at"] = time.perf_counter()
        else:
            steps.collections[info["generation"]].append(time.perf_counter() - started["at"])

    asyncio.events.Handle._run = run  # type: ignore[method-assign]
    asyncio.base_events.BaseEventLoop._run_once = turn  # type: ignore[method-assign]
    gc.callbacks.append(collected)
    try:
        yield steps
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
        asyncio.base_events.BaseEventLoop._run_once = original_turn  # type: ignore[method-assign]
        gc.callbacks.remove(collected)


async def _scrape_every_second(service: Service, until: float) -> None:
    """A scraper's asks, so that the service renders Prometheus's form up front as it would."""
    while time.monotonic() < until:
        service.exposition.body(Variant(openmetrics=True, gzip=True))
        await asyncio.sleep(1.0)


async def profile(servers: int, seconds: float) -> tuple[Steps, float]:
    """Run the service against ``servers`` simulated servers for ``seconds``; return its steps and the span."""
    with scratch() as tmp, Upstreams(servers, processes=4, engines=2) as swarm:
        path = Path(tmp) / "steps.yml"
        write_config(path, swarm.urls, poll_interval="1s", timeout="800ms", kind="vllm")
        with path.open("a", encoding="utf-8") as file:
            file.write(f"max_connections: {max(100, servers)}\n")
        config = load_config(str(path), kinds=adapter_kinds())
        nvml = SCENARIOS["h100x8"](time.monotonic)
        service = Service(config, gpu_factory=lambda c: gpu_source(c, nvml))
        await service.start()
        try:
            await asyncio.sleep(3.0)  # warm-up: connections opened, every server polled
            gc.freeze()
            with timing_steps() as steps:
                began = time.monotonic()
                await _scrape_every_second(service, began + seconds)
                span = time.monotonic() - began
        finally:
            await service.stop()
    return steps, span


def report(steps: Steps, span: float) -> str:
    """The long steps by where, longest total first, and the collections."""
    turns = sorted(steps.turns)
    q = {p: turns[min(len(turns) - 1, int(p / 100 * len(turns)))] * 1000 for p in (50, 99, 99.9)}
    lines = [
        f"loop busy {steps.total / span:.0%} of {span:.0f} s, in {len(turns)} turns: per turn p50 {q[50]:.2f} ms, "
        f"p99 {q[99]:.2f} ms, p99.9 {q[99.9]:.2f} ms, longest {turns[-1] * 1000:.2f} ms",
        f"steps of {LONG * 1000:g} ms or longer:",
    ]
    lines.append(f"{'count':>6} {'median':>8} {'max':>8} {'share':>6}  where")
    ranked = sorted(steps.by_where.items(), key=lambda item: -sum(item[1]))
    for where, took in ranked[:25]:
        share = sum(took) / span
        median, longest = statistics.median(took) * 1000, max(took) * 1000
        lines.append(f"{len(took):6d} {median:6.2f}ms {longest:6.2f}ms {share:6.1%}  {where}")
    lines.append("the longest turns, and their steps of 0.2 ms or more:")
    for took, held in steps.longest:
        parts = ", ".join(f"{where} {t * 1000:.2f} ms" for where, t in held)
        lines.append(f"  {took * 1000:6.2f} ms: {parts}")
    for generation, took in sorted(steps.collections.items()):
        lines.append(
            f"gc generation {generation}: {len(took)} collections, median {statistics.median(took) * 1000:.2f} ms, "
            f"longest {max(took) * 1000:.2f} ms"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    exporter_logging.configure("warn")
    print(report(*asyncio.run(profile(args.servers, args.seconds))))


if __name__ == "__main__":
    main()
