"""Helpers for the GPU and attribution tests: a poller in virtual time over a fake node, and series lookup."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.exposition.cache import Exposition, Variant
from exporter.fakes.nvml import FakeNvml
from exporter.model import Snapshot
from exporter.poll.poller import Poller
from exporter.sources.gpu import GpuSource
from tests.helpers import Clock, ScriptedServer, gpu_loops_once, scripted_server

PRICES = PricingConfig(gpu_hourly_cost={"default": 2.0, "NVIDIA H100 80GB HBM3": 3.0}, energy_cost_per_kwh=0.12)


def vllm_body(generated: float, model: str = "m") -> str:
    """A minimal vLLM body with a generation counter."""
    labels = f'model_name="{model}"'
    return (
        f"vllm:generation_tokens_total{{{labels}}} {generated}\n"
        f"vllm:request_success_total{{{labels}}} {generated / 100}\n"
    )


def text_of(snapshot: Snapshot) -> str:
    """The exposition of a snapshot, as a scrape gets it."""
    return Exposition(snapshot).body(Variant(False, False)).decode()


def series(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of ``name``: its label set → value."""
    return {
        frozenset(sample.labels.items()): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` whose labels include ``labels``, or ``None``."""
    found = [v for key, v in series(text, name).items() if set(labels.items()) <= set(key)]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0] if found else None


def gpu_names(text: str, gpu: str) -> set[str]:
    """Names of every sample labelled with NVML index ``gpu``."""
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("gpu") == gpu
    }


@dataclass
class Node:
    """A poller over a fake node and loopback servers, driven in virtual time."""

    poller: Poller
    clock: Clock
    servers: dict[str, ScriptedServer] = field(default_factory=dict)

    async def rounds(self, count: int, rates: dict[str, float] | None = None, step: float = 5.0) -> Snapshot:
        """``count`` rounds of GPUs then servers, ``step`` virtual seconds apart, counters growing at ``rates``."""
        for _ in range(count):
            for name, server in self.servers.items():
                server.body = vllm_body(self.clock.now * (rates or {}).get(name, 0.0))
            await gpu_loops_once(self.poller)
            await self.poller.poll_servers()
            self.clock.advance(step)
        return self.poller.snapshot()


@contextlib.asynccontextmanager
async def node(
    nvml: FakeNvml,
    clock: Clock,
    servers: Iterable[ServerConfig] = (),
    *,
    gpm: bool = False,
    xid_events: bool = False,
    **config: object,
) -> AsyncIterator[Node]:
    """Scripted loopback servers for ``servers`` (their URLs filled in), and a poller over ``nvml``."""
    wanted = list(servers)
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        scripted = {s.name: await stack.enter_async_context(scripted_server()) for s in wanted}
        configs = tuple(_with_url(s, scripted[s.name].url) for s in wanted)
        full = Config(
            poll_interval=5.0,
            rate_window=60.0,
            pricing=PRICES,
            gpu=GpuConfig("true", gpm=gpm, xid_events=xid_events),
            servers=configs,
            **config,  # type: ignore[arg-type]
        )
        source = GpuSource(nvml=nvml, gpm=gpm, xid_events=xid_events)
        poller = Poller(full, session=session, gpu_source=source, clock=clock, wall=lambda: 1.7e9)
        try:
            yield Node(poller, clock, scripted)
        finally:
            source.close()


def _with_url(server: ServerConfig, url: str) -> ServerConfig:
    return dataclasses.replace(server, url=url) if not server.url else server
