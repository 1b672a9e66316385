"""The live status page (``/``) and its JSON (``/api/v1/status``), fed by a bounded history of snapshots.

``StatusBoard.record`` runs on every publish and only writes numbers into ring buffers (about 0.3 ms
for the demo's 56 series); the page and the JSON are composed on request, at most once per snapshot
however many readers there are, and served from bytes cached until the next snapshot.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class _Key:
    form: str
    links: Links | None
    gzip: bool


class StatusBoard:
    """The history and the latest snapshot; the page and JSON rendered on demand, once per snapshot."""

    def __init__(
        self, config: Config, snapshot: Snapshot, *, window: float = WINDOW_SECONDS, max_series: int = MAX_SERIES
    ) -> None:
        resolution = resolution_for(config.poll_interval, window)
        self.history = History(resolution=resolution, window=max(window, resolution), max_series=max_series)
        self._snapshot, self._settings = snapshot, _settings(config)
        self._view: StatusView | None = None
        self._bodies: dict[_Key, bytes] = {}

    def record(self, snapshot: Snapshot, config: Config) -> None:
        """Add a snapshot to the history and make it the one shown."""
        record(self.history, snapshot)
        self._snapshot, self._settings = snapshot, _settings(config)
        self._view, self._bodies = None, {}

    def view(self) -> StatusView:
        """The view of the latest snapshot."""
        if self._view is None:
            self._view = build(self._snapshot, self.history, self._settings, __version__)
        return self._view

    def json(self, *, compress: bool = False) -> bytes:
        """``/api/v1/status`` for the latest snapshot."""
        return self._body(_Key("json", None, compress))

    def html(self, links: Links, *, compress: bool = False) -> bytes:
        """The status page for the latest snapshot."""
        return self._body(_Key("html", links, compress))

    def _body(self, key: _Key) -> bytes:
        cached = self._bodies.get(key)
        if cached is None:
            cached = self._bodies[key] = self._make(key)
        return cached

    def _make(self, key: _Key) -> bytes:
        if key.gzip:
            return gzip.compress(self._body(_Key(key.form, key.links, False)), compresslevel=6, mtime=0)
        if key.links is not None:
            return page.render(self.view(), key.links).encode()
        return api.encode(self.view())


def _settings(config: Config) -> Settings:
    return Settings(poll_interval=config.poll_interval, rate_window=config.rate_window)
