"""``inspect``: parse one ``/metrics`` body (file, stdin or URL) and print the normalized values as JSON.

This is the tool for wiring up a new server: it shows what the exporter makes of its body. A value
the server does not provide is ``null``. Bad input exits 1 with a one-line reason on stderr.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from exporter.model import ServerSample
from exporter.sources.scrape import ScrapeError, fetch_text
from exporter.sources.servers import ParseError, detect, get_adapter

MAX_BYTES = 16 * 1024 * 1024
FIELDS = (
    "prompt_tokens",
    "generation_tokens",
    "requests_finished",
    "requests_running",
    "requests_waiting",
    "kv_cache_usage_ratio",
)


def read_source(source: str, timeout: float) -> str:
    """The body from a file, ``-`` (stdin) or an http(s) URL; raise ``ValueError`` with a reason."""
    if source.startswith(("http://", "https://")):
        return asyncio.run(_fetch(source, timeout))
    try:
        data = sys.stdin.buffer.read(MAX_BYTES + 1) if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise ValueError(f"{source} is larger than {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source} is not UTF-8 text (byte {exc.start})") from None


async def _fetch(url: str, timeout: float) -> str:
    async with aiohttp.ClientSession() as session:
        try:
            return await fetch_text(session, url, timeout=timeout, max_bytes=MAX_BYTES)
        except ScrapeError as exc:
            raise ValueError(str(exc)) from None


def normalize(sample: ServerSample) -> dict[str, Any]:
    """The JSON shape ``inspect`` prints."""
    return {
        "kind": sample.kind,
        "models": {
            model: {field: getattr(values, field) for field in FIELDS} for model, values in sample.models.items()
        },
    }


def run_inspect(source: str, *, kind: str = "auto", timeout: float = 5.0) -> int:
    """Print the normalized JSON of one body; 0 on success, 1 with a reason on stderr otherwise."""
    try:
        text = read_source(source, timeout)
        adapter = detect(text) if kind == "auto" else get_adapter(kind)
        sample = adapter.parse(text)
    except KeyError:
        print(f"inspect: unknown --kind {kind!r}", file=sys.stderr)
        return 1
    except (ValueError, ParseError) as exc:
        print(f"inspect: {exc}", file=sys.stderr)
        return 1
    json.dump(normalize(sample), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    return 0
