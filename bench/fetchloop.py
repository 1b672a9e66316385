"""The scale benchmark's baseline: fetch every server's ``/metrics`` each second and do nothing else.

``python -m bench.fetchloop --interval 1 --seconds 10 URL...`` polls the URLs concurrently with one
aiohttp session (one connection per server, as the exporter's), reads each body whole, and counts
the rounds it could not start on time, as the exporter's poller counts missed polls. It prints one
JSON line: rounds, missed rounds, failed fetches. Its limit is the transport's: the most servers that
bare HTTP fetching in Python can keep up with on one core, a ceiling for the exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


async def _fetch(session: aiohttp.ClientSession, url: str, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout), session.get(url) as response:
            await response.read()
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def poll(urls: list[str], interval: float, seconds: float, warmup: float) -> dict[str, int]:
    """Poll every ``interval`` for ``warmup + seconds``; count what happened after the warm-up."""
    connector = aiohttp.TCPConnector(limit=len(urls), limit_per_host=4)
    counts = {"rounds": 0, "missed": 0, "failed": 0}
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        due = started
        while due < started + warmup + seconds:
            results = await asyncio.gather(*(_fetch(session, url, interval * 0.8) for url in urls))
            measuring = due >= started + warmup
            due += interval
            now = time.monotonic()
            while due <= now:
                due += interval
                counts["missed"] += measuring
            counts["rounds"] += measuring
            counts["failed"] += measuring * results.count(False)
            await asyncio.sleep(due - now)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(poll(args.urls, args.interval, args.seconds, args.warmup))), flush=True)


if __name__ == "__main__":
    main()
