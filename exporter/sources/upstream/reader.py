"""Poll one inference server: fetch its ``/metrics``, pick the adapter, parse, read side endpoints.

Every failure becomes an ``UpstreamError`` with a one-line reason (refused, timed out, HTTP status,
body too large, not UTF-8, too many series, unrecognized, malformed), which the poller turns into
``up 0``. Requests carry the server's access settings (``access``); no message shows a secret. The
series cap (``max_series_per_server``) is checked here, once, before the adapter parses.

Detecting and parsing a body are the CPU-bound part of a poll (about half a millisecond for a
real-sized vLLM body). The readers of one poller share ``Turns``, which runs those steps one at a
time, each in a turn of the event loop of its own: when dozens of bodies arrive together, a scrape
that arrives then waits for one parse, not for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urljoin

import aiohttp

from exporter.config import ServerConfig
from exporter.model import ServerSample
from exporter.sources.servers import Adapter, ParseError, detect, get_adapter
from exporter.sources.servers._text import check_series_count
from exporter.sources.upstream.access import AccessError, UpstreamAccess, redact_url
from exporter.sources.upstream.fetch import UpstreamError, fetch_text

T = TypeVar("T")


REDETECT_POLLS = 60
"""With ``kind: auto``, how many polls in a row may trust the adapter detected last (see ``_adapter_for``)."""


class Turns:
    """CPU-bound steps of many polls, taken one at a time, each in a turn of the event loop of its own."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def run(self, step: Callable[[], T]) -> T:
        """Wait for this step's turn, let whatever else is ready (a scrape) run first, then run it."""
        async with self._lock:
            await asyncio.sleep(0)
            return step()


class ServerReader:
    """Polls one configured server: fetch, detect the adapter (``kind: auto``), parse, enrich."""

    def __init__(
        self,
        config: ServerConfig,
        session: aiohttp.ClientSession,
        *,
        max_body_bytes: int,
        max_series: int,
        turns: Turns | None = None,
    ) -> None:
        self.config = config
        self._session = session
        self._max_body_bytes = max_body_bytes
        self._max_series = max_series
        self.adapter: Adapter | None = None if config.kind == "auto" else get_adapter(config.kind)
        """The configured adapter; ``None`` with ``kind: auto``, where each body is detected."""
        self._detected: Adapter | None = None
        self._polls_since_detection = 0
        self._access = UpstreamAccess(config)
        self._turns = turns or Turns()
        """Shared by the readers of one poller, so that their parses take turns."""

    async def poll(self) -> ServerSample:
        """One poll, ``/metrics`` and the adapter's side endpoints all within ``timeout``; raises ``UpstreamError``."""
        deadline = asyncio.get_running_loop().time() + self.config.timeout
        text = await self._fetch(self.config.url, deadline)
        adapter, sample = await self._turns.run(lambda: self._parse(text))
        sample = await self._enrich(adapter, sample, deadline)
        return self._rename(sample)

    def _parse(self, text: str) -> tuple[Adapter, ServerSample]:
        """Detect the adapter (``kind: auto``), check the series cap, parse: each once per poll."""
        adapter = self._adapter_for(text)
        try:
            check_series_count(text, self._max_series)
            return adapter, adapter.parse(text)
        except ParseError as exc:
            raise UpstreamError(f"{adapter.kind} adapter: {exc}") from None

    async def _fetch(self, url: str, deadline: float) -> str:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise UpstreamError(f"no time left for {redact_url(url)} within the {self.config.timeout:g}s timeout")
        try:
            options = self._access.options()
        except AccessError as exc:
            raise UpstreamError(str(exc)) from None
        return await fetch_text(self._session, url, timeout=remaining, max_bytes=self._max_body_bytes, options=options)

    def _adapter_for(self, text: str) -> Adapter:
        """The configured adapter, else the one detection picks for this body.

        With ``kind: auto`` the whole detection (every adapter, in order) runs on the first body, on
        every ``REDETECT_POLLS``-th, and on any body the adapter found last does not claim; in between,
        that adapter's own verdict confirms it (a few microseconds, where the whole detection of a
        vLLM body is twenty times that). A server replaced by another kind is seen at its first body
        the old adapter does not claim, and within ``REDETECT_POLLS`` polls in any case.
        """
        if self.adapter is not None:
            return self.adapter
        known, self._polls_since_detection = self._detected, self._polls_since_detection + 1
        if known is not None and self._polls_since_detection < REDETECT_POLLS and known.detect(text) is True:
            return known
        self._detected, self._polls_since_detection = None, 0
        try:
            self._detected = detect(text)
        except ParseError as exc:
            raise UpstreamError(str(exc)) from None
        return self._detected

    async def _enrich(self, adapter: Adapter, sample: ServerSample, deadline: float) -> ServerSample:
        """Fetch the side endpoints concurrently in the time left, and fold in those that answered."""
        urls = [urljoin(self.config.url, extra.path) for extra in adapter.extras]
        bodies = await asyncio.gather(*(self._fetch_optional(url, deadline) for url in urls))
        for extra, body in zip(adapter.extras, bodies, strict=True):
            if body is None:
                continue
            with contextlib.suppress(ParseError):
                sample = extra.merge(sample, body)
        return sample

    async def _fetch_optional(self, url: str, deadline: float) -> str | None:
        try:
            return await self._fetch(url, deadline)
        except UpstreamError:
            return None

    def _rename(self, sample: ServerSample) -> ServerSample:
        override = self.config.model
        if override is None or len(sample.models) != 1:
            return sample
        (only,) = sample.models.values()
        return dataclasses.replace(sample, models={override: only})
