"""When to render a snapshot: up front for the scrape that will read it, never for snapshots nobody reads.

Scrapes come at a steady interval (Prometheus's ``scrape_interval``), snapshots at the poll
intervals, and the two rarely match. Rendering every snapshot up front keeps scrapes fast but, with a
1 s poll scraped every 15 s, renders thirty snapshots for each one read; rendering at the first scrape
of a snapshot wastes nothing but makes that scrape wait for it. ``Demand`` remembers when each form
(text or OpenMetrics, plain or gzip) was last asked for and how long before that, and a new snapshot
renders a form up front only when that form's next scrape is expected (a tenth of its interval early,
for jitter) before the snapshot after next. So the scrape finds its bytes ready and the snapshots in
between are never rendered: a 1 s poll scraped every 15 s renders about four snapshots per scrape.

A guess that is wrong costs time, never correctness: a scrape that comes early renders its form
itself (once per snapshot), and a scrape that is late leaves its form due, so every snapshot renders
it up front until the scrape comes. A form not asked for over two of its intervals (a minute, before
its interval is known) is forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

Form = TypeVar("Form", bound=Hashable)

UNKNOWN_INTERVAL_SECONDS = 60.0
"""How long a form asked for only once stays due."""
EARLY = 0.1
"""Expect the next scrape this share of its interval early: scrapes and polls jitter."""


@dataclass(frozen=True, slots=True)
class _Asked:
    last: float
    """Monotonic seconds of the last ask."""
    interval: float | None
    """Seconds between the last two asks, ``None`` after the first."""


class Demand(Generic[Form]):
    """When each form was asked for, and which forms a snapshot published now should render up front."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._asked: dict[Form, _Asked] = {}
        self._published: float | None = None

    def note(self, form: Form) -> None:
        """A scrape asked for ``form`` now."""
        now = self._clock()
        previous = self._asked.get(form)
        self._asked[form] = _Asked(now, now - previous.last if previous is not None else None)

    def due(self) -> list[Form]:
        """The forms to render up front for a snapshot published now (and remember that one was)."""
        now = self._clock()
        step = now - self._published if self._published is not None else 0.0
        self._published = now
        for form in [f for f, asked in self._asked.items() if _forgotten(asked, now)]:
            del self._asked[form]
        return [form for form, asked in self._asked.items() if _expected_soon(asked, now, step)]


def _forgotten(asked: _Asked, now: float) -> bool:
    if asked.interval is None:
        return now - asked.last > UNKNOWN_INTERVAL_SECONDS
    return now - asked.last > max(2 * asked.interval, 1.0)  # at least a second: fast scrapers jitter


def _expected_soon(asked: _Asked, now: float, step: float) -> bool:
    """Whether the next ask comes before the snapshot after next (snapshots ``step`` seconds apart)."""
    return asked.interval is None or asked.last + (1 - EARLY) * asked.interval <= now + 2 * step
