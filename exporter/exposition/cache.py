"""Bytes rendered at most once per snapshot and served to every scrape until the next snapshot.

A scrape never does I/O: it picks one of at most four byte strings (text or OpenMetrics, plain or
gzip), each made at most once per snapshot. ``Demand`` (``demand.py``) decides which are made up
front, for the scrape that will read them; any other is made by the first scrape that asks for it.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass

from exporter.exposition.demand import Demand
from exporter.exposition.families import families
from exporter.exposition.text import Family, render
from exporter.model import Snapshot


@dataclass(frozen=True, slots=True)
class Variant:
    """One of the four forms a scrape can ask for."""

    openmetrics: bool
    gzip: bool


PLAIN_TEXT = Variant(openmetrics=False, gzip=False)
GZIP_LEVEL = 1
"""Level 1 compresses a 64-server exposition 3× faster than level 6, for a body 8% larger."""


class Exposition:
    """The rendered forms of one snapshot.

    Without ``demand`` the plain text is rendered up front. With it, the forms it says are due are,
    and ``body`` tells it what each scrape asks for.
    """

    def __init__(self, snapshot: Snapshot, demand: Demand[Variant] | None = None) -> None:
        self.snapshot = snapshot
        self._demand = demand
        self._families: list[Family] | None = None
        self._bodies: dict[Variant, bytes] = {}
        self._lock = threading.RLock()
        for variant in demand.due() if demand is not None else (PLAIN_TEXT,):
            self._get(variant)

    @property
    def rendered(self) -> frozenset[Variant]:
        """The forms made so far."""
        return frozenset(self._bodies)

    def body(self, variant: Variant) -> bytes:
        """The bytes for ``variant``, rendered on first use."""
        if self._demand is not None:
            self._demand.note(variant)
        return self._get(variant)

    def _get(self, variant: Variant) -> bytes:
        cached = self._bodies.get(variant)
        if cached is not None:
            return cached
        with self._lock:
            if variant not in self._bodies:
                self._bodies[variant] = self._make(variant)
            return self._bodies[variant]

    def _make(self, variant: Variant) -> bytes:
        if variant.gzip:
            return gzip.compress(self._get(Variant(variant.openmetrics, False)), compresslevel=GZIP_LEVEL, mtime=0)
        if self._families is None:
            self._families = families(self.snapshot)
        return render(self._families, openmetrics=variant.openmetrics)
