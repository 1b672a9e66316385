"""GET one upstream body within a deadline and a size cap, as UTF-8 text.

Every failure becomes an ``UpstreamError`` with a one-line reason (refused, timed out, HTTP status,
body too large, not UTF-8), which the poller turns into ``up 0``. No message shows a secret: URLs
are shown with their credentials and query redacted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from exporter.sources.upstream.access import redact_url

CHUNK_BYTES = 64 * 1024


class UpstreamError(Exception):
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
                    raise UpstreamError(f"HTTP {response.status} from {shown}")
                body = await _read_capped(response, max_bytes)
    except TimeoutError:
        raise UpstreamError(f"no complete answer from {shown} within {timeout:.2g}s") from None
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"cannot fetch {shown}: {_reason(exc)}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UpstreamError(f"body from {shown} is not UTF-8 (byte {exc.start})") from None


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if response.content_length is not None and response.content_length > max_bytes:
        raise UpstreamError(f"body of {response.content_length} bytes is over the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise UpstreamError(f"body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
