"""The overhead benchmark's baseline: the same interpreter with the exporter's imports, idling in an event loop.

``python -m bench.idle`` imports what the exporter's command line imports (aiohttp, structlog,
PyYAML, pynvml, every adapter) and then waits for SIGTERM in an asyncio event loop, so the difference
between it and the exporter is what polling, deriving and serving cost.
"""

from __future__ import annotations

import asyncio
import signal

import exporter.cli  # imported for its cost, like the next line
import exporter.fakes.nvml  # noqa: F401


async def _idle() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main() -> None:
    asyncio.run(_idle())


if __name__ == "__main__":
    main()
