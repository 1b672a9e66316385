"""Load: 200 concurrent scrapers hammer ``/metrics`` for 30 s; count errors, time every scrape.

The exporter runs as users run it (its command line, ``--gpu.simulate h100x8``, 8 simulated vLLM
servers polled every second, so the exposition changes under the load). Each scraper keeps one
keep-alive connection, as Prometheus does, and asks for what Prometheus asks for (OpenMetrics, gzip).
An error is anything but a complete 200: a refused or reset connection, a timeout, a 503 from
``--web.max-requests``. The second scenario puts the same load through TLS and basic auth (the
exporter-toolkit web config), where every scrape carries credentials whose check is cached.

    python -m bench.load                 # 200 scrapers, 30 s per scenario
    python -m bench.load --scrapers 50 --seconds 10 --plain-only
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import Row, machine, ms, percentile, table
from bench.daemon import PROMETHEUS_HEADERS, Daemon, Upstreams, scratch, write_config

SCRAPERS, SECONDS = 200, 30.0


@dataclass
class Outcome:
    """What the scrapers saw."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def _scraper(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], until: float, outcome: Outcome
) -> None:
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    outcome.error(f"HTTP {response.status}")
                    continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome.error(type(exc).__name__)
            continue
        outcome.latencies.append(time.perf_counter() - start)


async def hammer(
    url: str, scrapers: int, seconds: float, *, context: ssl.SSLContext | None = None, headers: dict[str, str]
) -> Outcome:
    """Run ``scrapers`` concurrent scrape loops against ``url`` for ``seconds``."""
    outcome = Outcome()
    connector = aiohttp.TCPConnector(limit=scrapers, ssl=context if context is not None else True)
    timeout = aiohttp.ClientTimeout(total=30)
    sent = {**PROMETHEUS_HEADERS, **headers}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        until = time.monotonic() + seconds
        await asyncio.gather(*(_scraper(session, url, sent, until, outcome) for _ in range(scrapers)))
    return outcome


def scenario(name: str, scrapers: int, seconds: float, *, secure: bool) -> list[Row]:
    """Start the exporter (plain, or with TLS and basic auth), load it, and report."""
    with scratch() as tmp, Upstreams(8) as upstreams:
        directory = Path(tmp)
        config = directory / "config.yml"
        write_config(config, upstreams.urls, poll_interval="1s")
        with Daemon(config, log=directory / "exporter.log", secure=directory if secure else None) as exporter:
            url = exporter.base + "/metrics"
            outcome = asyncio.run(hammer(url, scrapers, seconds, context=exporter.context, headers=exporter.headers))
            alive = exporter.alive
    return rows(name, scrapers, seconds, outcome, alive)


def rows(name: str, scrapers: int, seconds: float, outcome: Outcome, alive: bool) -> list[Row]:
    """The figures of one scenario."""
    done, failed = len(outcome.latencies), sum(outcome.errors.values())
    detail = ", ".join(f"{k} ×{v}" for k, v in sorted(outcome.errors.items())) or "none"
    lat = outcome.latencies or [float("nan")]
    label = f"load: {name}"
    return [
        Row(label, f"scrapes by {scrapers} scrapers in {seconds:g} s", f"{done} ({done / seconds:.0f}/s)"),
        Row(label, "errors", f"{failed} ({detail})", target="0", met=failed == 0 and alive),
        Row(label, "latency p50", ms(percentile(lat, 50))),
        Row(label, "latency p99", ms(percentile(lat, 99))),
        Row(label, "latency max", ms(max(lat))),
    ]


def run(
    *, full: bool = False, scrapers: int = SCRAPERS, seconds: float | None = None, plain_only: bool = False
) -> list[Row]:
    """Both scenarios (plain HTTP; TLS with basic auth), 30 s each with ``full`` (the spec), 8 s by default."""
    seconds = seconds or (SECONDS if full else 8.0)
    out = scenario("plain HTTP", scrapers, seconds, secure=False)
    if not plain_only:
        out += scenario("TLS + basic auth", scrapers, seconds, secure=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapers", type=int, default=SCRAPERS, help=f"concurrent scrapers (default {SCRAPERS})")
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"per scenario (default {SECONDS:g})")
    parser.add_argument("--plain-only", action="store_true", help="skip the TLS + basic auth scenario")
    args = parser.parse_args(argv)
    print(machine())
    result = run(scrapers=args.scrapers, seconds=args.seconds, plain_only=args.plain_only, full=True)
    print(table(result))
    return 0 if all(r.met is not False for r in result) else 1


if __name__ == "__main__":
    sys.exit(main())
