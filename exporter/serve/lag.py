"""How late the event loop runs: ``inference_exporter_event_loop_lag_seconds``.

Scrapes, polls and publishing share one event loop, so a step that holds it (a long parse, a
render) delays every scrape that arrives meanwhile. ``LoopLag`` schedules a timer every
``INTERVAL_SECONDS`` and records how late the loop ran it; the gauge is the longest delay over the
last ``WINDOW_SECONDS``. An idle loop is a fraction of a millisecond late (the timer's own
resolution); a lag that stays high means the exporter itself is the bottleneck: too many servers
for one process at this poll interval, or a body far larger than usual.
"""

from __future__ import annotations

import asyncio
from collections import deque

INTERVAL_SECONDS = 0.25
WINDOW_SECONDS = 30.0


class LoopLag:
    """The longest delay of a timer on the running event loop, over a sliding window."""

    def __init__(self, *, interval: float = INTERVAL_SECONDS, window: float = WINDOW_SECONDS) -> None:
        self.interval, self.window = interval, window
        self._delays: deque[tuple[float, float]] = deque()
        """(loop time, delay) of each timer within the window, oldest first."""
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start timing the running loop (a callback, not a task: a few microseconds a tick)."""
        self.stop()
        loop = asyncio.get_running_loop()
        self._schedule(loop, loop.time() + self.interval)

    def stop(self) -> None:
        """Stop timing; what was measured stays readable."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer = loop.call_at(when, self._tick, loop, when)

    def _tick(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        now = loop.time()
        self.observe(now - when, now)
        self._schedule(loop, max(when + self.interval, now))

    def observe(self, delay: float, now: float) -> None:
        """Record that a timer due ``delay`` seconds before ``now`` ran at ``now``."""
        self._delays.append((now, max(delay, 0.0)))
        while self._delays and self._delays[0][0] < now - self.window:
            self._delays.popleft()

    def worst(self) -> float:
        """The longest delay within the window (0 before the first tick)."""
        return max((delay for _, delay in self._delays), default=0.0)
