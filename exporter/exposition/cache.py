"""Bytes rendered once per snapshot and served to every scrape until the next snapshot.

A scrape never renders and never does I/O: it picks one of at most four byte strings (text or
OpenMetrics, plain or gzip), each made the first time it is asked for after a snapshot.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass

from exporter.exposition.families import families
from exporter.exposition.text import Family, render
from exporter.model import Snapshot


@dataclass(frozen=True, slots=True)
class Variant:
    """One of the four forms a scrape can ask for."""

    openmetrics: bool
    gzip: bool


class Exposition:
    """The rendered forms of one snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._families: list[Family] = families(snapshot)
        self._bodies: dict[Variant, bytes] = {}
        self._lock = threading.RLock()
        self.body(Variant(openmetrics=False, gzip=False))

    def body(self, variant: Variant) -> bytes:
        """The bytes for ``variant``, rendered on first use."""
        cached = self._bodies.get(variant)
        if cached is not None:
            return cached
        with self._lock:
            if variant not in self._bodies:
                self._bodies[variant] = self._make(variant)
            return self._bodies[variant]

    def _make(self, variant: Variant) -> bytes:
        if variant.gzip:
            return gzip.compress(self.body(Variant(variant.openmetrics, False)), compresslevel=6, mtime=0)
        return render(self._families, openmetrics=variant.openmetrics)
