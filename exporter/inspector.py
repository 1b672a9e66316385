"""``inspect``: parse one ``/metrics`` body (file, stdin or URL) and print the normalized values as JSON.

This is the tool for wiring up a new server: it shows what the exporter makes of its body. A URL is
polled exactly as the exporter polls a configured server (same body cap, detection, side endpoints
such as TGI's ``/info``); a file or stdin is parsed alone. A value the server does not provide is
``null``. Bad input exits 1 with a one-line reason on stderr; nothing is printed on stdout then.

Output::

    {"kind": "vllm", "models": {"<model>": {"prompt_tokens": 123.0, "generation_tokens": 456.0,
      "requests_finished": 7.0, "requests_running": 1.0, "requests_waiting": 0.0,
      "kv_cache_usage_ratio": 0.12, "prompt_cached_tokens": 40.0, "recomputed_prompt_tokens": null,
      "recomputed_generation_tokens": null, "prefill_gpu_seconds": null, "decode_gpu_seconds": null,
      "flops_per_gpu": null}}}
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path
from typing import IO, Any

import aiohttp

from exporter.config import ServerConfig
from exporter.model import SAMPLE_FIELDS, ServerSample
from exporter.sources.servers import ParseError, adapter_kinds, detect, get_adapter
from exporter.sources.servers._text import DEFAULT_MAX_SERIES, check_series_count
from exporter.sources.upstream.fetch import UpstreamError
from exporter.sources.upstream.reader import ServerReader

MAX_BYTES = 16 * 1024 * 1024
"""The largest body read, as the exporter's default ``max_body_bytes``."""
FIELDS = tuple(SAMPLE_FIELDS)
"""The normalized values printed per model, in this order (``null`` where the server has none)."""


class InspectError(Exception):
    """The source cannot be read or parsed; the message is the one-line reason."""


def is_url(source: str) -> bool:
    """Whether the source is an http(s) URL rather than a file or ``-``."""
    return source.startswith(("http://", "https://"))


def read_local(source: str, stdin: IO[bytes] | None = None) -> str:
    """The text of a file or of stdin (``-``), at most ``MAX_BYTES`` of UTF-8."""
    try:
        if source == "-":
            data = (stdin or sys.stdin.buffer).read(MAX_BYTES + 1)
        else:
            with Path(source).open("rb") as file:
                data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InspectError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise InspectError(f"{'stdin' if source == '-' else source} is larger than {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InspectError(f"{'stdin' if source == '-' else source} is not UTF-8 text (byte {exc.start})") from None


def parse_local(text: str, kind: str) -> ServerSample:
    """Detect (``kind == "auto"``) and parse a body."""
    try:
        adapter = detect(text) if kind == "auto" else get_adapter(kind)
        check_series_count(text, DEFAULT_MAX_SERIES)
        return adapter.parse(text)
    except ParseError as exc:
        raise InspectError(str(exc)) from None


async def poll_url(url: str, kind: str, timeout: float) -> ServerSample:
    """Poll a URL as the exporter polls a configured server."""
    config = ServerConfig(name="inspect", url=url, kind=kind, timeout=timeout)
    async with aiohttp.ClientSession() as session:
        reader = ServerReader(config, session, max_body_bytes=MAX_BYTES, max_series=DEFAULT_MAX_SERIES)
        try:
            return await reader.poll()
        except UpstreamError as exc:
            raise InspectError(str(exc)) from None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def normalize(sample: ServerSample) -> dict[str, Any]:
    """The JSON shape ``inspect`` prints."""
    return {
        "kind": sample.kind,
        "models": {
            model: {field: _finite(getattr(values, field)) for field in FIELDS}
            for model, values in sample.models.items()
        },
    }


def inspect_source(source: str, *, kind: str = "auto", timeout: float = 5.0) -> dict[str, Any]:
    """The normalized values of one source; raise ``InspectError`` with the reason."""
    kinds = ("auto", *adapter_kinds())
    if kind not in kinds:
        raise InspectError(f"unknown --kind {kind!r} (known: {', '.join(kinds)})")
    if not math.isfinite(timeout) or timeout <= 0:
        raise InspectError("--timeout must be a number of seconds above zero")
    sample = asyncio.run(poll_url(source, kind, timeout)) if is_url(source) else parse_local(read_local(source), kind)
    return normalize(sample)


def run_inspect(source: str, *, kind: str = "auto", timeout: float = 5.0) -> int:
    """Print the normalized JSON of one body; 0 on success, 1 with a reason on stderr otherwise."""
    try:
        result = inspect_source(source, kind=kind, timeout=timeout)
    except InspectError as exc:
        print(f"inspect: {exc}", file=sys.stderr)
        return 1
    try:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (such as ``head``) went away: not an error of ours
        sys.stderr.close()
    return 0
