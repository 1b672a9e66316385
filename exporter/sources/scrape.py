"""Fetch one inference server's ``/metrics`` over HTTP and parse it with its adapter.

Every failure becomes a ``ScrapeError`` with a one-line reason (refused, timed out, HTTP status,
body too large, not UTF-8, unrecognized, malformed), which the poller turns into ``up 0``. Requests
carry the server's access settings (``exporter.sources.access``); no message shows a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import aiohttp

from exporter.config import ServerConfig
from exporter.model import ServerSample
from exporter.sources.access import AccessError, UpstreamAccess, redact_url
from exporter.sources.servers import Adapter, ParseError, detect, get_adapter
from exporter.sources.servers._text import series_limit


class ScrapeError(Exception):
    """One poll of a server failed; the message says why in one line."""


async def fetch_text(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    options: Mapping[str, Any] | None = None,
) -> str:
    """GET ``url`` and return its body as text, within ``timeout`` seconds and ``max_bytes`` bytes.

    ``options`` (headers, ``ssl``, ``server_hostname``) go to ``session.get``.
    """
    shown = redact_url(url)
    try:
        async with asyncio.timeout(timeout):
            async with session.get(url, allow_redirects=False, **(options or {})) as response:
                if response.status != 200:
                    raise ScrapeError(f"HTTP {response.status} from {shown}")
                body = await _read_capped(response, max_bytes)
    except TimeoutError:
        raise ScrapeError(f"no complete answer from {shown} within {timeout:.2g}s") from None
    except aiohttp.ClientError as exc:
        raise ScrapeError(f"cannot fetch {shown}: {_reason(exc)}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScrapeError(f"body from {shown} is not UTF-8 (byte {exc.start})") from None


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if response.content_length is not None and response.content_length > max_bytes:
        raise ScrapeError(f"body of {response.content_length} bytes is over the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise ScrapeError(f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


class ServerScraper:
    """Polls one configured server: fetch, detect the adapter (``kind: auto``), parse, enrich."""

    def __init__(
        self, config: ServerConfig, session: aiohttp.ClientSession, *, max_body_bytes: int, max_series: int
    ) -> None:
        self.config = config
        self._session = session
        self._max_body_bytes = max_body_bytes
        self._max_series = max_series
        self.adapter: Adapter | None = None if config.kind == "auto" else get_adapter(config.kind)
        """The configured adapter; with ``kind: auto`` each body is detected afresh (a cheap test)."""
        self._access = UpstreamAccess(config)

    async def poll(self) -> ServerSample:
        """One poll, ``/metrics`` and the adapter's side endpoints all within ``timeout``; raises ``ScrapeError``."""
        deadline = asyncio.get_running_loop().time() + self.config.timeout
        text = await self._fetch(self.config.url, deadline)
        adapter = self._adapter_for(text)
        try:
            with series_limit(self._max_series):
                sample = adapter.parse(text)
        except ParseError as exc:
            raise ScrapeError(f"{adapter.kind} adapter: {exc}") from None
        sample = await self._enrich(adapter, sample, deadline)
        return self._rename(sample)

    async def _fetch(self, url: str, deadline: float) -> str:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise ScrapeError(f"no time left for {redact_url(url)} within the {self.config.timeout:g}s timeout")
        try:
            options = self._access.options()
        except AccessError as exc:
            raise ScrapeError(str(exc)) from None
        return await fetch_text(self._session, url, timeout=remaining, max_bytes=self._max_body_bytes, options=options)

    def _adapter_for(self, text: str) -> Adapter:
        if self.adapter is not None:
            return self.adapter
        try:
            return detect(text)
        except ParseError as exc:
            raise ScrapeError(str(exc)) from None

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
        except ScrapeError:
            return None

    def _rename(self, sample: ServerSample) -> ServerSample:
        override = self.config.model
        if override is None or len(sample.models) != 1:
            return sample
        (only,) = sample.models.values()
        return dataclasses.replace(sample, models={override: only})
