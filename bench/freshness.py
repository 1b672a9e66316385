"""Freshness: how soon the exporter's tokens/s gauge shows a step change in a server's true rate.

A simulated vLLM server (the recorded body, counters the exact integral of the rate) runs at a
steady rate until each exporter's rate window holds only that rate, then doubles it. Two exporters
watch it, as users run them: at the default settings (5 s poll, 60 s window) and at the fastest
recommended ones (1 s poll, 10 s window). The benchmark reads each exporter's
``inference_generation_tokens_per_second`` every 50 ms and times when it first shows half of the
step.

The baseline is the design: a rate over a window of W seconds moves half-way W/2 after a step, and
the poll that sees it comes up to one poll interval P later. The target allows 2P + W/2.

The window-versus-noise trade-off is computed in virtual time with the exporter's own rate code
(``noise``): a server that counts tokens at completion (TGI, SGLang, llama.cpp) moves its counter in
lumps of one request's tokens, so a rate over a short window jumps; the relative spread of the
gauge is about 1/sqrt(requests finished in the window).
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import Row, sample
from bench.daemon import Daemon, scratch, write_config
from bench.upstream import Upstream
from exporter import derive

RATE = 1000.0
"""Generation tokens/s before the step; after it, twice as much."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One way to run the exporter."""

    name: str
    poll: float
    window: float

    @property
    def design(self) -> float:
        """Worst case by design: half the window, plus one poll."""
        return self.window / 2 + self.poll

    @property
    def target(self) -> float:
        return self.window / 2 + 2 * self.poll


SETTINGS = (Setting("defaults", 5.0, 60.0), Setting("fastest recommended", 1.0, 10.0))


async def _gauge(session: aiohttp.ClientSession, daemon: Daemon) -> float | None:
    async with session.get(daemon.base + "/metrics") as response:
        return sample(await response.text(), "inference_generation_tokens_per_second", server="server-0000")


async def _watch(daemons: dict[Setting, Daemon], upstream: Upstream, timeout: float) -> dict[Setting, float | None]:
    """Step the rate; return, per setting, seconds until its gauge showed half of the step."""
    half = RATE * 1.5
    delays: dict[Setting, float | None] = dict.fromkeys(daemons)
    async with aiohttp.ClientSession() as session:
        upstream.servers[0].rate.set(RATE * 2)
        stepped = time.monotonic()
        while any(d is None for d in delays.values()) and time.monotonic() - stepped < timeout:
            for setting, daemon in daemons.items():
                if delays[setting] is None and (await _gauge(session, daemon) or 0.0) >= half:
                    delays[setting] = time.monotonic() - stepped
            await asyncio.sleep(0.05)  # the reading cadence: 50 ms of resolution
    return delays


async def _steady(daemons: dict[Setting, Daemon], warmup: float) -> dict[Setting, float | None]:
    """Wait until every window holds only the steady rate; return each gauge then."""
    await asyncio.sleep(warmup)  # pacing: the windows need this long to fill, whatever the load
    async with aiohttp.ClientSession() as session:
        return {setting: await _gauge(session, daemon) for setting, daemon in daemons.items()}


async def measure(
    settings: tuple[Setting, ...] = SETTINGS,
) -> tuple[dict[Setting, float | None], dict[Setting, float | None]]:
    """Steady gauges and step delays of the settings, measured side by side."""
    upstream = Upstream(1, rate=RATE)
    urls = await upstream.start()
    try:
        with scratch() as tmp:
            daemons = {}
            for setting in settings:
                config = Path(tmp) / f"{setting.poll:g}.yml"
                write_config(config, urls, poll_interval=f"{setting.poll:g}s", rate_window=f"{setting.window:g}s")
                daemons[setting] = await asyncio.to_thread(Daemon(config).__enter__)
            try:
                warmup = max(s.window for s in settings) + 2 * max(s.poll for s in settings)
                steady = await _steady(daemons, warmup)
                delays = await _watch(daemons, upstream, timeout=3 * max(s.target for s in settings))
            finally:
                for daemon in daemons.values():
                    daemon.__exit__(None, None, None)
    finally:
        await upstream.close()
    return steady, delays


def noise(window: float, poll: float, rate: float, lump: float, *, regular: bool = False, seed: int = 1) -> float:
    """Relative spread (stdev / mean) of the rate gauge at a steady rate, the counter moving in lumps.

    The counter moves by ``lump`` tokens at a time: at random (a Poisson process of requests finishing,
    each adding its tokens at once) or, with ``regular``, at even steps (engine steps of a server that
    counts every step). The exporter's ``derive.observe``/``derive.rate`` run on polls ``poll`` apart.
    """
    rng = random.Random(seed)
    per_second = rate / lump
    window_state, counter, now, next_finish = derive.EMPTY_WINDOW, 0.0, 0.0, 0.0
    gauges = []
    for step in range(int(20 * window / poll) + 2000):
        now = step * poll
        while next_finish <= now:
            counter += lump
            next_finish += 1 / per_second if regular else rng.expovariate(per_second)
        window_state = derive.observe(window_state, now, counter, window)
        value = derive.rate(window_state)
        if now > 2 * window and value is not None:
            gauges.append(value)
    return statistics.pstdev(gauges) / statistics.fmean(gauges)


def noise_rows() -> list[Row]:
    """The spread of the gauge per window, at 1000 tokens/s, for both ways servers count tokens."""
    out = []
    for window in (5.0, 10.0, 30.0, 60.0):
        steps = noise(window, 1.0, RATE, RATE * 0.03, regular=True)  # an engine step every 30 ms
        lumps = noise(window, 1.0, RATE, 256.0)  # 256-token requests counted when they finish
        out.append(
            Row(
                "freshness: window vs noise (1000 tokens/s, 1 s poll)",
                f"{window:g} s window: half-step after ≈ {window / 2:g} s; spread of the gauge",
                f"counted per step (vLLM): {steps:.2%}; at completion (TGI, SGLang, llama.cpp): {lumps:.1%}",
                f"1/√(requests in window) = {1 / math.sqrt(RATE / 256.0 * window):.1%}",
            )
        )
    return out


def run(*, full: bool = False) -> list[Row]:
    """The fastest recommended setting (about 25 s; with ``full`` both, about 90 s), then the noise table."""
    settings = SETTINGS if full else SETTINGS[1:]
    steady, delays = asyncio.run(measure(settings))
    out = []
    for setting in settings:
        delay, gauge = delays[setting], steady[setting]
        name = f"freshness: {setting.name} ({setting.poll:g} s poll, {setting.window:g} s window)"
        shown = f"{delay:.1f} s" if delay is not None else "never"
        ratio = f"{delay / setting.design:.2f} of the design" if delay is not None else "—"
        met = delay is not None and delay <= setting.target
        figure = f"step {RATE:g} → {2 * RATE:g} tokens/s: time to show half (steady gauge {gauge or 0:.0f})"
        out.append(Row(name, figure, shown, f"≤ {setting.design:g} s by design", ratio, f"≤ {setting.target:g} s", met))
    return out + noise_rows()


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
