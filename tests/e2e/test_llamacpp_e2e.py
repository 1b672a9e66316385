"""A real llama-server under a real load, watched by the real exporter: counts, live rates, a restart.

The server is llama.cpp's ``llama-server`` (built by ``scripts/build-llama-server.sh``) serving a
tiny random-weight GGUF made on the spot. The exporter runs as its CLI in a subprocess with
``kind: auto`` and a simulated GPU node. The test drives a bounded load through streamed
``/completion`` requests and checks the exporter against what the responses themselves report:

1. A long request alone: the generation rate is live (from ``/slots``) while the server's own
   counter has not moved, and the counter then moves by exactly that request's tokens.
2. A mixed, concurrent load: the exporter's counter equals the sum of the tokens the responses
   report, exactly; its generation tokens/s over the load is within 5% of the client's own count
   over the very same windows.
3. A restart of llama-server: ``up`` dips and recovers, no rate is negative or spikes, and the
   counting carries on from the new process.

Run it alone with ``make e2e-llamacpp`` (builds the server once, then uses the cache).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.e2e.completion_load import Completion, Timeline, run_load
from tests.e2e.exporter_watch import ExporterWatch, Reading, Window, poll_gaps, tiling, windows
from tests.e2e.llama_server import LlamaServer, find_llama_server
from tests.e2e.tiny_gguf import write_tiny_gguf
from tests.helpers import ExporterProcess, free_port, run_exporter

# The first test may wait for a llama-server build that CI runs in the background (see .ci/run).
pytestmark = [pytest.mark.e2e, pytest.mark.llamacpp, pytest.mark.slow, pytest.mark.timeout(2400)]

POLL, SPAN = 0.5, 2.2
"""The exporter's poll_interval and rate_window, in seconds."""
SERVER = "llama"
LONG = 1500
MIXED = [LONG, *([64, 448, 160, 320, 96, 384, 224, 512, 128] * 6)]
"""Enough tokens that the load lasts several rate windows however fast the machine (at least 3 are compared)."""
AFTER_RESTART = [256, 96, 320, 160, 512, 64, 224, 128]
RATE_TOLERANCE = 0.05
SPIKE_FACTOR = 1.5


def config_text(port: int) -> str:
    return f"""\
poll_interval: {POLL * 1000:g}ms
rate_window: {SPAN * 1000:g}ms
gpu: {{enabled: true}}
pricing: {{gpu_hourly_cost: {{default: 2.0}}}}
servers:
  - name: {SERVER}
    url: http://127.0.0.1:{port}/metrics
    kind: auto
    gpus: [0]
    timeout: 400ms
"""


@pytest.fixture
def llama(tmp_path: Path) -> Iterator[LlamaServer]:
    """A running llama-server with a fresh tiny model; stopped by PID afterwards."""
    binary, vocab = find_llama_server()
    model = write_tiny_gguf(vocab, tmp_path / "tiny-random-llama.gguf")
    server = LlamaServer(binary, model, free_port(), tmp_path / "llama-server")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def exporter(llama: LlamaServer, tmp_path: Path) -> Iterator[ExporterProcess]:
    config = tmp_path / "config.yml"
    config.write_text(config_text(llama.port), encoding="utf-8")
    with run_exporter(["--config.file", str(config), "--gpu.simulate", "h100x8"], tmp_path) as process:
        yield process


@pytest_asyncio.fixture
async def watch(exporter: ExporterProcess) -> AsyncIterator[ExporterWatch]:
    """Scrapes the exporter every 100 ms for the whole test."""
    watcher = ExporterWatch(f"{exporter.base}/metrics", SERVER)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        task = asyncio.create_task(watcher.run(session))
        await watcher.wait_for(lambda r: r.up == 1 and r.generated is not None, 60, "the exporter to see the server")
        try:
            yield watcher
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@dataclass
class Phase:
    """One part of the load: its completions and when it ran (unix seconds)."""

    completions: list[Completion]
    started: float
    finished: float

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.completions)


async def drive(base: str, n_predicts: list[int], concurrency: int, tag: str) -> Phase:
    """Send the requests, ``concurrency`` at a time, and wait for all of them."""
    started = time.time()
    connector = aiohttp.TCPConnector(force_close=True)  # llama-server may close a finished stream's connection
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        completions = await run_load(session, base, n_predicts, concurrency, tag)
    return Phase(completions, started, time.time())


async def counted(watch: ExporterWatch, expected: float, what: str) -> Reading:
    """Wait until the exporter's generation counter reaches ``expected``; fail if it overshoots."""
    reading = await watch.wait_for(
        lambda r: r.generated is not None and r.generated >= expected, 30, f"{what}: counter at {expected:g}"
    )
    assert reading.generated == expected, f"{what}: the exporter counted {reading.generated}, responses say {expected}"
    return reading


def live_readings(readings: list[Reading], phase: Phase, counter_before: float) -> list[Reading]:
    """Readings of polls during the long request in which the rate was up and the counter still stood."""
    during = [r for r in readings if r.polled_at is not None and phase.started < r.polled_at < phase.finished]
    return [r for r in during if r.generated == counter_before and (r.rate or 0.0) > 0]


def client_rate(timeline: Timeline, window: Window) -> float:
    return timeline.tokens_between(window.start, window.end) / (window.end - window.start)


def report(figures: dict[str, object], tmp_path: Path) -> None:
    """Print the measured figures (``pytest -rP`` shows them) and keep them beside the logs."""
    text = json.dumps(figures, indent=2)
    (tmp_path / "figures.json").write_text(text, encoding="utf-8")
    print(f"llama.cpp end-to-end figures:\n{text}")


async def long_request_alone(llama: LlamaServer, watch: ExporterWatch) -> tuple[Phase, dict[str, object]]:
    """One long request alone: the rate is live while the server's counter stands still."""
    before = watch.readings[-1].generated
    assert before == 0
    alone = await drive(llama.base, [LONG], 1, "alone")
    await counted(watch, alone.tokens, "after the long request")
    live = {r.polled_at for r in live_readings(watch.readings, alone, counter_before=before)}
    assert len(live) >= 2, f"no live rate during the {alone.tokens}-token request"
    return alone, {"live_polls_during_long_request": len(live), "long_request_seconds": alone.finished - alone.started}


async def mixed_load(llama: LlamaServer, watch: ExporterWatch, alone: Phase) -> tuple[Phase, dict[str, object]]:
    """Concurrent requests of mixed lengths: exact counters, and the client's tokens/s over the same windows."""
    mixed = await drive(llama.base, MIXED, 4, "mixed")
    completions = [*alone.completions, *mixed.completions]
    reading = await counted(watch, alone.tokens + mixed.tokens, "after the mixed load")
    prompt_tokens = sum(c.prompt_tokens or 0 for c in completions)
    assert reading.prompted == prompt_tokens
    timeline = Timeline(completions)
    load = tiling(windows(watch.readings, SPAN, POLL), alone.started, mixed.finished + POLL)
    assert len(load) >= 3, f"too few certain windows over the load: {load}"
    seconds = sum(w.end - w.start for w in load)
    exporter_rate = sum(w.tokens for w in load) / seconds
    client = sum(timeline.tokens_between(w.start, w.end) for w in load) / seconds
    error = exporter_rate / client - 1.0
    per_window = [round(100 * (w.rate / client_rate(timeline, w) - 1.0), 1) for w in load]
    assert abs(error) <= RATE_TOLERANCE, (exporter_rate, client, per_window)
    return mixed, {
        "requests_before_restart": len(completions),
        "tokens_counted_before_restart": reading.generated,
        "tokens_reported_by_responses_before_restart": alone.tokens + mixed.tokens,
        "prompt_tokens_counted": reading.prompted,
        "prompt_tokens_reported": prompt_tokens,
        "client_tokens_per_second_whole_mixed_load": mixed.tokens / (mixed.finished - mixed.started),
        "exporter_tokens_per_second_over_windows": exporter_rate,
        "client_tokens_per_second_over_same_windows": client,
        "rate_error_percent": 100 * error,
        "windows": len(load),
        "window_errors_percent": per_window,
    }


async def restart(llama: LlamaServer, watch: ExporterWatch, earlier: list[Phase]) -> dict[str, object]:
    """Restart llama-server: up dips and recovers, no rate goes negative or spikes, counting goes on."""
    restart_at = len(watch.readings)
    await asyncio.to_thread(llama.stop)
    await watch.wait_for(lambda r: r.up == 0, 30, "up 0 while llama-server is stopped")
    await asyncio.to_thread(llama.start)
    await watch.wait_for(lambda r: r.up == 1, 30, "up 1 after llama-server is back")
    after = await drive(llama.base, AFTER_RESTART, 4, "after")
    reading = await counted(watch, after.tokens, "after the restart")
    rates = [r.rate for r in watch.readings if r.rate is not None]
    after_rates = [r.rate for r in watch.readings[restart_at:] if r.rate is not None]
    timeline = Timeline(c for phase in [*earlier, after] for c in phase.completions)
    peak = max(timeline.tokens_between(a, b) / (b - a) for a, b in poll_gaps(watch.readings, POLL))
    assert min(rates) >= 0
    assert max(after_rates) <= SPIKE_FACTOR * peak, (max(after_rates), peak)
    assert any(rate > 0 for rate in after_rates)
    return {
        "tokens_counted_after_restart": reading.generated,
        "tokens_reported_by_responses_after_restart": after.tokens,
        "max_rate_after_restart": max(after_rates),
        "peak_client_rate_between_polls": peak,
    }


@pytest.mark.asyncio
async def test_a_real_llama_server_is_counted_exactly_with_a_live_rate_through_a_restart(
    llama: LlamaServer, watch: ExporterWatch, tmp_path: Path
) -> None:
    started = time.monotonic()
    alone, figures = await long_request_alone(llama, watch)
    mixed, more = await mixed_load(llama, watch, alone)
    figures |= more | await restart(llama, watch, [alone, mixed])
    figures["test_seconds"] = time.monotonic() - started
    report({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}, tmp_path)
