"""A bounded in-memory history of the status page's figures: one fixed-size ring per series.

Time is cut into slots of ``resolution`` seconds (at least twice the poll interval, so every slot
receives a snapshot even when polls jitter). A snapshot writes into the slot its time falls in and
overwrites what an earlier snapshot of the same slot wrote: however often snapshots come, a series
never holds more than ``slots`` points.

Memory, stated and checked by ``tests/test_status_history.py`` (with ``tracemalloc``): a series is
an ``array('d')`` of ``slots`` float64 values plus a fixed overhead (its key, its entry), so with the
defaults (15 minutes at a 5 s resolution or coarser, ``slots`` ≤ 180) it holds at most 1,440 bytes
of values and about 1.8 KiB in all (measured: 1,840 bytes), whatever the uptime: 8 bytes per point,
that is 5,760 bytes per series per hour at the finest (5 s) resolution, of which the last 15 minutes
are kept, so the memory stops growing after 15 minutes. At most ``max_series`` series are kept
(about 7.5 MiB at the default 4,096); further ones are not charted and are counted in
``dropped_series``.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from math import isnan
from typing import NamedTuple

NAN = math.nan
WINDOW_SECONDS = 900.0
MAX_POINTS = 180
MAX_SERIES = 4096

SeriesKey = tuple[str, tuple[str, ...]]
"""(metric name, label values), as the series appears in ``/metrics``."""


class Point(NamedTuple):
    """One value to record: a series, the server it belongs to (``None`` for GPUs), and its value."""

    key: SeriesKey
    server: str | None
    value: float | None


def resolution_for(poll_interval: float, window: float = WINDOW_SECONDS, max_points: int = MAX_POINTS) -> float:
    """The slot length: the finest that keeps ``max_points`` per window and puts a poll in every slot."""
    return max(window / max_points, 2.0 * poll_interval)


class _Series:
    __slots__ = ("last_seen", "server", "values")

    def __init__(self, slots: int, server: str | None) -> None:
        self.values = array("d", [NAN]) * slots
        self.server = server
        self.last_seen = 0


class History:
    """The last ``window`` seconds of every series, in rings of ``slots`` points."""

    def __init__(
        self,
        *,
        resolution: float,
        window: float = WINDOW_SECONDS,
        max_series: int = MAX_SERIES,
    ) -> None:
        if resolution <= 0 or window < resolution:
            raise ValueError(f"history: resolution {resolution}s must be positive and at most the window {window}s")
        self.resolution = resolution
        self.slots = max(2, math.ceil(window / resolution))
        self.window = self.slots * resolution
        self.max_series = max_series
        self.dropped_series = 0
        self._series: dict[SeriesKey, _Series] = {}
        self._times = array("d", [NAN]) * self.slots
        self._head = 0
        """Ring position of the newest slot."""
        self._head_slot: int | None = None
        """Absolute slot number (time // resolution) of the newest slot; ``None`` before the first record."""
        self._first_slot: int | None = None

    def same_slot(self, first_unix: float, second_unix: float) -> bool:
        """Whether two moments fall in the same slot."""
        return math.floor(first_unix / self.resolution) == math.floor(second_unix / self.resolution)

    def record(self, taken_at_unix: float, points: Iterable[Point], servers: Iterable[str]) -> None:
        """Write one snapshot's values into its slot; forget servers no longer configured and stale series."""
        self._advance(math.floor(taken_at_unix / self.resolution))
        assert self._head_slot is not None
        self._times[self._head] = taken_at_unix
        self._forget(set(servers))
        for series in self._series.values():
            series.values[self._head] = NAN
        for point in points:
            self._write(point)

    def _advance(self, slot: int) -> None:
        """Move the head to ``slot``, blanking the slots skipped on the way (gaps stay gaps)."""
        if self._head_slot is None:
            self._head_slot = self._first_slot = slot
            return
        steps = slot - self._head_slot
        if steps <= 0:  # the same slot, or a wall clock that stepped back: overwrite the newest slot
            return
        for _ in range(min(steps, self.slots)):
            self._head = (self._head + 1) % self.slots
            self._times[self._head] = NAN
            for series in self._series.values():
                series.values[self._head] = NAN
        self._head_slot = slot

    def _forget(self, servers: set[str]) -> None:
        assert self._head_slot is not None
        oldest = self._head_slot - self.slots + 1
        stale = [
            key
            for key, series in self._series.items()
            if (series.server is not None and series.server not in servers) or series.last_seen < oldest
        ]
        for key in stale:
            del self._series[key]

    def _write(self, point: Point) -> None:
        if point.value is None or not math.isfinite(point.value):
            return
        series = self._series.get(point.key)
        if series is None:
            if len(self._series) >= self.max_series:
                self.dropped_series += 1
                return
            series = self._series[point.key] = _Series(self.slots, point.server)
        series.values[self._head] = point.value
        assert self._head_slot is not None
        series.last_seen = self._head_slot

    # -- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, key: SeriesKey) -> bool:
        return key in self._series

    def series_keys(self) -> Iterator[SeriesKey]:
        """The series kept, in the order they were first seen."""
        return iter(self._series)

    def span(self) -> int:
        """How many of the newest slots hold data since the first record (at most ``slots``)."""
        if self._head_slot is None or self._first_slot is None:
            return 0
        return min(self.slots, self._head_slot - self._first_slot + 1)

    def times(self) -> list[float | None]:
        """Unix time of the snapshot in each of the last ``span()`` slots, oldest first (``None``: no snapshot)."""
        return _chronological(self._times, self._head, self.span())

    def values(self, key: SeriesKey) -> list[float | None]:
        """The series' value in each of the last ``span()`` slots, oldest first (``None``: absent)."""
        series = self._series.get(key)
        if series is None:
            return [None] * self.span()
        return _chronological(series.values, self._head, self.span())


def _chronological(ring: array[float], head: int, count: int) -> list[float | None]:
    ordered = ring[head + 1 :] + ring[: head + 1]
    return [None if isnan(v) else v for v in ordered[len(ordered) - count :]]
