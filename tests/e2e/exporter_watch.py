"""Watch a running exporter from outside: scrape it often, keep what it said about one server, find its windows.

The exporter documents its rates as the increase between the oldest and newest poll inside
``rate_window``. Its ``inference_server_last_success_timestamp_seconds`` says when each poll
finished, so scraping faster than it polls recovers every poll time, and with them the exact
window behind each rate it served: the interval to hold the load generator's own count against.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

WANTED = {
    "inference_server_up": "up",
    "inference_server_last_success_timestamp_seconds": "polled_at",
    "inference_generation_tokens_total": "generated",
    "inference_prompt_tokens_total": "prompted",
    "inference_generation_tokens_per_second": "rate",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """What one scrape said about the watched server (``None``: the series was absent)."""

    at: float
    """Unix seconds when the scrape's answer arrived."""
    up: float | None = None
    polled_at: float | None = None
    """Unix seconds at which the exporter's latest successful poll of the server finished."""
    generated: float | None = None
    prompted: float | None = None
    rate: float | None = None


def read_exposition(text: str, server: str, at: float) -> Reading:
    """The watched server's values in one exposition."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = WANTED.get(sample.name)
            if key is not None and sample.labels.get("server") == server:
                values[key] = float(sample.value)
    return Reading(at=at, **values)


@dataclass
class ExporterWatch:
    """Scrapes ``url`` every ``interval`` seconds until cancelled, keeping every reading."""

    url: str
    server: str
    interval: float = 0.1
    readings: list[Reading] = field(default_factory=list)

    async def run(self, session: aiohttp.ClientSession) -> None:
        """Scrape until cancelled."""
        while True:
            async with session.get(self.url) as response:
                text = await response.text()
            self.readings.append(read_exposition(text, self.server, time.time()))
            await asyncio.sleep(self.interval)

    async def wait_for(self, check: Callable[[Reading], bool], timeout: float, what: str) -> Reading:
        """The first new reading for which ``check(reading)`` is true; fail after ``timeout`` seconds."""
        start, deadline = len(self.readings), time.monotonic() + timeout
        while time.monotonic() < deadline:
            for reading in self.readings[start:]:
                if check(reading):
                    return reading
            await asyncio.sleep(0.05)
        last = self.readings[-1] if self.readings else None
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last reading: {last}")


@dataclass(frozen=True, slots=True)
class Window:
    """One rate the exporter served, with the polls that bound it."""

    start: float
    end: float
    rate: float

    @property
    def tokens(self) -> float:
        return self.rate * (self.end - self.start)


def windows(readings: Sequence[Reading], span: float, interval: float, margin: float = 0.05) -> list[Window]:
    """Every served rate whose window is certain: its oldest poll, and the poll before it, were both seen.

    A window is left out when a poll near its start may have been missed, or lies within ``margin``
    seconds of the cutoff (where a clock tick could put it on either side).
    """
    polls = sorted({r.polled_at for r in readings if r.polled_at is not None})
    found: dict[float, Window] = {}
    for reading in readings:
        end = reading.polled_at
        if end is None or reading.rate is None or end in found:
            continue
        first = bisect.bisect_left(polls, end - span)
        if first == 0 or first >= len(polls):
            continue
        oldest, before = polls[first], polls[first - 1]
        if oldest - before > 1.5 * interval or min(oldest - (end - span), (end - span) - before) < margin:
            continue
        found[end] = Window(oldest, end, reading.rate)
    return sorted(found.values(), key=lambda w: w.end)


def poll_gaps(readings: Sequence[Reading], interval: float) -> list[tuple[float, float]]:
    """Each pair of consecutive polls that were both seen, at most 1.5 poll intervals apart."""
    polls = sorted({r.polled_at for r in readings if r.polled_at is not None})
    return [(a, b) for a, b in itertools.pairwise(polls) if b - a <= 1.5 * interval]


def tiling(candidates: Sequence[Window], start: float, end: float) -> list[Window]:
    """Windows that do not overlap, taken in order, from the first starting at or after ``start`` to ``end``."""
    chosen: list[Window] = []
    for window in candidates:
        if window.start >= (chosen[-1].end if chosen else start) and window.end <= end:
            chosen.append(window)
    return chosen
