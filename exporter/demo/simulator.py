"""A simulated vLLM server: its ``/metrics`` follows vLLM V1's families under a load with a known rate.

Its counters are exact functions of the integral of its demand (``workload.Workload``), so the true
tokens/s, cache hits, FLOPs and idle periods at any moment are known in closed form
(``true_generation_rate``, ...) and tests can compare the exporter against them. ``sglang`` renders
the same workload as SGLang reports it, with measured GPU time per phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from exporter.demo.workload import Workload

TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[float] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0.0] * (len(self.bounds) + 1)

    def observe(self, value: float, times: float) -> None:
        slot = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[slot] += times
        self.total += value * times

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0.0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            le = "+Inf" if math.isinf(bound) else repr(bound)
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out += [f"{name}_count{{{labels}}} {running}", f"{name}_sum{{{labels}}} {self.total}"]
        return out


@dataclass
class Latencies:
    """The latency histograms a simulated server keeps, fed with the requests that finished since the last scrape."""

    ttft: _Histogram = field(default_factory=lambda: _Histogram(TTFT_BUCKETS))
    itl: _Histogram = field(default_factory=lambda: _Histogram(ITL_BUCKETS))
    e2e: _Histogram = field(default_factory=lambda: _Histogram(E2E_BUCKETS))
    queue: _Histogram = field(default_factory=lambda: _Histogram(E2E_BUCKETS))
    last_requests: float = 0.0

    def observe(self, requests: float, load: float, tokens_per_request: float) -> None:
        """Observe the requests finished since the last call, with latencies that grow with ``load``."""
        finished, self.last_requests = requests - self.last_requests, requests
        if finished <= 0:
            return
        self.ttft.observe(0.05 + 0.6 * load**3, finished)
        self.itl.observe(0.012 + 0.03 * load**2, finished * tokens_per_request)
        self.e2e.observe(tokens_per_request * (0.012 + 0.03 * load**2), finished)
        self.queue.observe(0.002 + 8.0 * max(0.0, load - 0.8), finished)

    def lines(self, prefix: str, labels: str, queue_family: str) -> list[str]:
        """Every histogram in the text format, under the server's family names."""
        out: list[str] = []
        for family, histogram, help_text in (
            ("time_to_first_token_seconds", self.ttft, "Histogram of time to first token in seconds."),
            ("inter_token_latency_seconds", self.itl, "Histogram of inter-token latency in seconds."),
            ("e2e_request_latency_seconds", self.e2e, "Histogram of e2e request latency in seconds."),
            (queue_family, self.queue, "Histogram of time spent in the queue before running."),
        ):
            name = prefix + family
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram", *histogram.lines(name, labels)]
        return out


def family(kind: str, name: str, help_text: str, rows: list[tuple[str, float]]) -> list[str]:
    """A family of ``kind`` (counter, gauge) in the text format, one sample per (labels, value)."""
    samples = (f"{name}{{{labels}}} {value}" for labels, value in rows)
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


def counter(name: str, help_text: str, rows: list[tuple[str, float]]) -> list[str]:
    """A counter family in the text format."""
    return family("counter", name, help_text, rows)


def gauge(name: str, help_text: str, rows: list[tuple[str, float]]) -> list[str]:
    """A gauge family in the text format."""
    return family("gauge", name, help_text, rows)


@dataclass
class SimulatedVllm(Workload):
    """One simulated vLLM V1 engine serving ``model`` at up to ``capacity`` generation tokens/s.

    Every counter moves every step, as vLLM's do: tokens, finished requests, prompt tokens served
    from the prefix cache (``prompt_tokens_cached_total``) and, as with ``--enable-mfu-metrics``, the
    estimated FLOPs per GPU. vLLM reports no GPU time per phase that a cost split could use.
    """

    latencies: Latencies = field(default_factory=Latencies)

    def render(self) -> str:
        """The ``/metrics`` body at this moment."""
        now = self.clock()
        self.latencies.observe(self.requests(now), self.demand(now), self.tokens_per_request)
        return "\n".join(self._lines(now)) + "\n"

    def _lines(self, now: float) -> list[str]:
        labels = f'engine="0",model_name="{self.model}"'
        return [
            *gauge(
                "vllm:num_requests_running",
                "Number of requests in model execution batches.",
                [(labels, self.running(now))],
            ),
            *gauge(
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                [(labels, self.waiting(now))],
            ),
            *gauge(
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                [(labels, self.kv_cache_usage(now))],
            ),
            *counter(
                "vllm:prompt_tokens_total", "Number of prefill tokens processed.", [(labels, self.prompt_tokens(now))]
            ),
            *counter(
                "vllm:prompt_tokens_cached_total",
                "Number of cached prompt tokens (local + external).",
                [(labels, self.cached_prompt_tokens(now))],
            ),
            *counter(
                "vllm:generation_tokens_total",
                "Number of generation tokens processed.",
                [(labels, self.generation_tokens(now))],
            ),
            *counter(
                "vllm:request_success_total",
                "Count of successfully processed requests.",
                [(f'{labels},finished_reason="stop"', self.requests(now))],
            ),
            *counter(
                "vllm:estimated_flops_per_gpu_total",
                "Estimated number of floating point operations per GPU (for Model Flops Utilization calculations).",
                [(labels, self.flops_per_gpu(now))],
            ),
            *self.latencies.lines("vllm:", labels, "request_queue_time_seconds"),
        ]


class Simulated(Protocol):
    """A simulated server: its body, and whether it is down."""

    down: bool

    def render(self) -> str: ...


def simulated_app(server: Simulated) -> web.Application:
    """An aiohttp app serving the simulated server's ``/metrics``."""

    async def metrics(_request: web.Request) -> web.Response:
        if server.down:
            return web.Response(status=503, text="engine is down\n")
        return web.Response(text=server.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app
