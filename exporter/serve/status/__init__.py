"""The live status page (``/``) and its JSON (``/api/v1/status``), fed by a bounded history of snapshots.

``StatusBoard.record`` runs on every publish and only writes numbers into ring buffers (about 1 ms
for 64 servers); the page and the JSON are composed on request, at most once per snapshot however
many readers there are, and served from bytes cached until the next snapshot. On the event loop
(``read_html``, ``read_json``) the view is built in one step (the history cannot change under it),
then encoded and compressed in steps of their own, so that scrapes get turns in between; readers
of a snapshot recorded meanwhile get the new one, and no answer mixes two.
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass

from exporter import __version__
from exporter.config import Config
from exporter.model import Snapshot
from exporter.serve.status import api, page
from exporter.serve.status.history import MAX_SERIES, WINDOW_SECONDS, History, resolution_for
from exporter.serve.status.page import CONTENT_SECURITY_POLICY, Links
from exporter.serve.status.view import Settings, StatusView, build, record

__all__ = ["CONTENT_SECURITY_POLICY", "Links", "StatusBoard"]

GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class _Key:
    form: str
    links: Links | None
    gzip: bool


class _Forms:
    """The view of one snapshot and its encodings, each made once."""

    def __init__(self, snapshot: Snapshot, settings: Settings) -> None:
        self.snapshot, self.settings = snapshot, settings
        self._view: StatusView | None = None
        self._bodies: dict[_Key, bytes] = {}
        self._making: dict[_Key, asyncio.Task[bytes]] = {}

    def view(self, history: History) -> StatusView:
        if self._view is None:
            self._view = build(self.snapshot, history, self.settings, __version__)
        return self._view

    def body(self, key: _Key) -> bytes:
        cached = self._bodies.get(key)
        if cached is None:
            source = self.body(_Key(key.form, key.links, False)) if key.gzip else None
            cached = self._bodies[key] = _encode(self._built(), key, source)
        return cached

    async def read(self, key: _Key) -> bytes:
        cached = self._bodies.get(key)
        if cached is not None:
            return cached
        making = self._making.get(key)
        if making is None:
            making = self._making[key] = asyncio.create_task(self._make(key))
            making.add_done_callback(lambda task: self._made(key, task))
        return await asyncio.shield(making)

    async def _make(self, key: _Key) -> bytes:
        source = await self.read(_Key(key.form, key.links, False)) if key.gzip else None
        await asyncio.sleep(0)
        return _encode(self._built(), key, source)

    def _made(self, key: _Key, task: asyncio.Task[bytes]) -> None:
        self._making.pop(key, None)
        if not task.cancelled() and task.exception() is None:
            self._bodies.setdefault(key, task.result())

    def _built(self) -> StatusView:
        assert self._view is not None, "the view is built when a reader first asks"
        return self._view


def _encode(view: StatusView, key: _Key, source: bytes | None) -> bytes:
    if source is not None:
        return gzip.compress(source, compresslevel=GZIP_LEVEL, mtime=0)
    if key.links is not None:
        return page.render(view, key.links).encode()
    return api.encode(view)


class StatusBoard:
    """The history and the latest snapshot; the page and JSON rendered on demand, once per snapshot."""

    def __init__(
        self, config: Config, snapshot: Snapshot, *, window: float = WINDOW_SECONDS, max_series: int = MAX_SERIES
    ) -> None:
        resolution = resolution_for(config.poll_interval, window)
        self._history = History(resolution=resolution, window=max(window, resolution), max_series=max_series)
        self._forms = _Forms(snapshot, _settings(config))
        self._pending: Snapshot | None = None
        """The latest snapshot not yet written into the history (see ``record``)."""

    @property
    def history(self) -> History:
        """The history, with the latest snapshot in it."""
        self._flush()
        return self._history

    def record(self, snapshot: Snapshot, config: Config) -> None:
        """Make a snapshot the one shown, and the one its history slot keeps.

        A slot keeps the last snapshot taken in it, so a snapshot is written into the history only
        once the next one falls in another slot, or someone looks: with a 1 s GPU loop and 5 s slots,
        one write in five, and the same history.
        """
        pending = self._pending
        if pending is not None and not self._history.same_slot(pending.taken_at_unix, snapshot.taken_at_unix):
            self._flush()
        self._pending = snapshot
        self._forms = _Forms(snapshot, _settings(config))

    def _flush(self) -> None:
        if self._pending is not None:
            record(self._history, self._pending)
            self._pending = None

    def view(self) -> StatusView:
        """The view of the latest snapshot."""
        return self._forms.view(self.history)

    def json(self, *, compress: bool = False) -> bytes:
        """``/api/v1/status`` for the latest snapshot, made in one go."""
        return self._now(_Key("json", None, compress))

    def html(self, links: Links, *, compress: bool = False) -> bytes:
        """The status page for the latest snapshot, made in one go."""
        return self._now(_Key("html", links, compress))

    async def read_json(self, *, compress: bool = False) -> bytes:
        """``/api/v1/status`` for the latest snapshot, made in steps that let scrapes in."""
        return await self._read(_Key("json", None, compress))

    async def read_html(self, links: Links, *, compress: bool = False) -> bytes:
        """The status page for the latest snapshot, made in steps that let scrapes in."""
        return await self._read(_Key("html", links, compress))

    def _now(self, key: _Key) -> bytes:
        forms = self._forms
        forms.view(self.history)
        return forms.body(key)

    async def _read(self, key: _Key) -> bytes:
        forms = self._forms
        forms.view(self.history)  # now, in this step: the next record changes the history
        return await forms.read(key)


def _settings(config: Config) -> Settings:
    return Settings(poll_interval=config.poll_interval, rate_window=config.rate_window)
