"""Simulated vLLM servers for the benchmarks: the recorded body's families, with live counters.

Each server serves the recorded vLLM 0.33 body (``tests/fixtures/servers``, full latency histograms)
with its token and request counters replaced by the exact integral of a rate the benchmark sets, so
the true tokens/s is known at every moment. By default both recorded data-parallel engines are kept
(about 80 KB); ``engines=1`` keeps one engine's series (about 47 KB, as a server on one GPU serves).

``python -m bench.upstream --servers N`` serves N of them on N loopback ports in a process of their
own and prints their URLs as one JSON line; SIGTERM stops it. ``--first K`` numbers their models from
K, so that several such processes (a swarm, ``bench.daemon.Upstreams``) serve distinct models.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from bench.common import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "servers" / "vllm-0.33.0-reconstructed.prom"
LIVE_COUNTERS = {
    "vllm:generation_tokens_total": 1.0,
    "vllm:prompt_tokens_total": 2.0,
    "vllm:request_success_total": 1 / 256,
}
"""Counter families that move, and how fast relative to the generation rate (tokens, tokens, requests)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECORDED_MODEL = 'model_name="Qwen/Qwen3-8B"'


@dataclass
class Rate:
    """A piecewise-constant rate (per second) and its exact integral on ``clock``."""

    value: float
    clock: Callable[[], float] = time.monotonic
    _since: float = field(default=0.0, init=False)
    _total: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._since = self.clock()

    def total(self) -> float:
        """The integral since the start."""
        return self._total + self.value * (self.clock() - self._since)

    def set(self, value: float) -> None:
        """Change the rate from now on (a step)."""
        self._total, self._since, self.value = self.total(), self.clock(), value


@dataclass(frozen=True, slots=True)
class Template:
    """A body cut at the values of live counter lines: ``parts`` around ``slots`` (recorded value, weight)."""

    parts: tuple[str, ...]
    slots: tuple[tuple[float, float], ...]

    def for_model(self, model: str) -> Template:
        """The same body for another model name (servers of a fleet differ at least in that)."""
        label = f'model_name="{model}"'
        return Template(tuple(part.replace(RECORDED_MODEL, label) for part in self.parts), self.slots)

    def render(self, generated: float) -> bytes:
        """The body when ``generated`` tokens have been generated since the start."""
        out = [self.parts[0]]
        for (recorded, weight), part in zip(self.slots, self.parts[1:], strict=True):
            out.append(repr(recorded + weight * generated))
            out.append(part)
        return "".join(out).encode()


def vllm_template(text: str | None = None, *, engines: int = 2) -> Template:
    """Cut the recorded vLLM body (or ``text``) at its live counters' values, keeping 1 or 2 engines."""
    lines = (text if text is not None else FIXTURE.read_text(encoding="utf-8")).splitlines(keepends=True)
    if engines < 2:
        lines = [line for line in lines if 'engine="1"' not in line]
    names = [line.split("{", 1)[0].split(" ", 1)[0] for line in lines]
    per_family = {name: names.count(name) for name in LIVE_COUNTERS}
    parts: list[str] = []
    slots: list[tuple[float, float]] = []
    current: list[str] = []
    for line, name in zip(lines, names, strict=True):
        if name in LIVE_COUNTERS and not line.startswith("#"):
            head, _, value = line.rstrip("\n").rpartition(" ")
            current.append(head + " ")
            parts.append("".join(current))
            current = ["\n"]
            slots.append((float(value), LIVE_COUNTERS[name] / per_family[name]))
        else:
            current.append(line)
    parts.append("".join(current))
    return Template(tuple(parts), tuple(slots))


@dataclass
class SimulatedServer:
    """One simulated vLLM server: the template with counters at ``rate``'s integral."""

    template: Template
    rate: Rate

    def body(self) -> bytes:
        return self.template.render(self.rate.total())


class Upstream:
    """``count`` simulated servers, each on its own loopback port, served by one aiohttp runner."""

    def __init__(
        self,
        count: int,
        *,
        rate: float = 2000.0,
        engines: int = 2,
        clock: Callable[[], float] = time.monotonic,
        first: int = 0,
    ) -> None:
        template = vllm_template(engines=engines)
        self.servers = [
            SimulatedServer(template.for_model(f"org/model-{i:04d}"), Rate(rate, clock))
            for i in range(first, first + count)
        ]
        self.urls: list[str] = []
        self._by_port: dict[int, SimulatedServer] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> list[str]:
        """Listen on one free port per server; return their ``/metrics`` URLs."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        for _ in self.servers:
            await web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024).start()
        for server, address in zip(self.servers, self._runner.addresses, strict=True):
            self._by_port[address[1]] = server
            self.urls.append(f"http://127.0.0.1:{address[1]}/metrics")
        return self.urls

    async def _metrics(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        server = self._by_port[request.transport.get_extra_info("sockname")[1]]
        return web.Response(body=server.body(), headers={"Content-Type": CONTENT_TYPE})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _serve(count: int, rate: float, engines: int, first: int) -> None:
    upstream = Upstream(count, rate=rate, engines=engines, first=first)
    urls = await upstream.start()
    print(json.dumps({"urls": urls}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await upstream.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=8, help="how many servers (default 8)")
    parser.add_argument("--rate", type=float, default=2000.0, help="generation tokens/s of each (default 2000)")
    parser.add_argument("--engines", type=int, default=2, choices=(1, 2), help="data-parallel engines (default 2)")
    parser.add_argument("--first", type=int, default=0, help="number of the first server's model (default 0)")
    args = parser.parse_args()
    asyncio.run(_serve(args.servers, args.rate, args.engines, args.first))


if __name__ == "__main__":
    main()
