"""Bytes rendered at most once per snapshot and served to every scrape until the next snapshot.

A scrape never does I/O: it picks one of at most four byte strings (text or OpenMetrics, plain or
gzip), each made at most once per snapshot. ``Demand`` (``demand.py``) decides which are due, to be
made up front for the scrape that will read them; any other is made by the first scrape that asks
for it (``body``), in one go.

Rendering up front shares the event loop with scrapes, so ``prepare`` does it in slices: about a
quarter of a millisecond of rendering, then a turn for whatever else is ready (a scrape of the
previous snapshot's bytes), then the next slice; gzip compresses in pieces the same way. The
service makes an ``Exposition`` the one served only once its due forms are made, so a scrape reads
either the old snapshot's bytes or the new one's, never a half-made state. A scrape that asks for a
form nobody expected renders it in one go: it is rare (the form's scrapes are expected from then
on), and while it renders no other scrape piles up waiting for it, as they would, each holding a
request slot (``--web.max-requests``), behind a rendering done in slices.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from exporter.exposition.demand import Demand
from exporter.exposition.families import families
from exporter.exposition.text import Family, render, render_in_slices
from exporter.model import Snapshot


@dataclass(frozen=True, slots=True)
class Variant:
    """One of the four forms a scrape can ask for."""

    openmetrics: bool
    gzip: bool


PLAIN_TEXT = Variant(openmetrics=False, gzip=False)
GZIP_LEVEL = 1
"""Level 1 compresses a 64-server exposition 3× faster than level 6, for a body 8% larger."""
GZIP_SLICE_BYTES = 256 * 1024
"""Input compressed per slice: about a third of a millisecond at level 1."""


class Exposition:
    """The rendered forms of one snapshot.

    ``due`` are the forms to make up front: those ``demand`` expects a scrape to read, or the plain
    text without ``demand``. They are made in the constructor, in one go, unless ``prepared=False``
    leaves them to ``prepare``. ``body`` tells ``demand`` what each scrape asks for.
    """

    def __init__(self, snapshot: Snapshot, demand: Demand[Variant] | None = None, *, prepared: bool = True) -> None:
        self.snapshot = snapshot
        self._demand = demand
        self.due: tuple[Variant, ...] = tuple(demand.due()) if demand is not None else (PLAIN_TEXT,)
        self._families: list[Family] | None = None
        self._bodies: dict[Variant, bytes] = {}
        if prepared:
            self.prepare_now()

    @property
    def rendered(self) -> frozenset[Variant]:
        """The forms made so far."""
        return frozenset(self._bodies)

    # -- in one go -----------------------------------------------------------------------------

    def prepare_now(self) -> None:
        """Make the due forms in one go."""
        for variant in self.due:
            self._get(variant)

    def body(self, variant: Variant) -> bytes:
        """The bytes for ``variant``, made in one go on first use."""
        self._note(variant)
        return self._get(variant)

    def _get(self, variant: Variant) -> bytes:
        cached = self._bodies.get(variant)
        if cached is None:
            cached = self._bodies[variant] = self._make(variant)
        return cached

    def _make(self, variant: Variant) -> bytes:
        if variant.gzip:
            return zlib.compress(self._get(Variant(variant.openmetrics, False)), GZIP_LEVEL, wbits=31)
        return render(self._all_families(), openmetrics=variant.openmetrics)

    # -- in slices, on the event loop ----------------------------------------------------------

    async def prepare(self) -> None:
        """Make the due forms in slices, letting scrapes in between (before this exposition is served)."""
        for variant in self.due:
            await self._get_sliced(variant)

    async def _get_sliced(self, variant: Variant) -> bytes:
        cached = self._bodies.get(variant)
        if cached is None:
            cached = self._bodies.setdefault(variant, await self._make_sliced(variant))
        return cached

    async def _make_sliced(self, variant: Variant) -> bytes:
        if variant.gzip:
            plain = await self._get_sliced(Variant(variant.openmetrics, False))
            return await _in_turns(_gzip_in_slices(plain))
        await asyncio.sleep(0)
        every = self._all_families()
        await asyncio.sleep(0)
        return await _in_turns(render_in_slices(every, openmetrics=variant.openmetrics))

    # -- shared --------------------------------------------------------------------------------

    def _note(self, variant: Variant) -> None:
        if self._demand is not None:
            self._demand.note(variant)

    def _all_families(self) -> list[Family]:
        if self._families is None:
            self._families = families(self.snapshot)
        return self._families


async def _in_turns(pieces: Iterator[bytes]) -> bytes:
    """Join the pieces, giving the event loop a turn after making each."""
    out = []
    for piece in pieces:
        out.append(piece)
        await asyncio.sleep(0)
    return b"".join(out)


def _gzip_in_slices(data: bytes) -> Iterator[bytes]:
    """``zlib.compress(data, GZIP_LEVEL, wbits=31)`` (gzip, mtime 0), the same bytes, a slice of input at a time."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    view = memoryview(data)
    for start in range(0, len(data), GZIP_SLICE_BYTES):
        yield compressor.compress(view[start : start + GZIP_SLICE_BYTES])
    yield compressor.flush()
