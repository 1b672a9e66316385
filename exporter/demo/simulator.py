"""A simulated vLLM server: its ``/metrics`` follows vLLM V1's families under a load with a known rate.

The generation counter is the exact integral of the demand curve, so the true tokens/s at any moment
is known in closed form (``true_generation_rate``) and tests can compare the exporter against it.
Demand follows a daily-like swing: ``base + swing * sin(2π t / period + phase)``, a fraction of the
server's capacity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

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
class SimulatedVllm:
    """One simulated vLLM engine serving ``model`` at up to ``capacity`` generation tokens/s."""

    model: str
    capacity: float = 2000.0
    base: float = 0.6
    swing: float = 0.3
    period: float = 600.0
    phase: float = 0.0
    tokens_per_request: float = 256.0
    prompt_tokens_per_request: float = 512.0
    clock: Callable[[], float] = time.monotonic
    started: float = field(default_factory=time.monotonic)
    down: bool = False
    """When true, ``/metrics`` answers 503 (a server that is down)."""
    _last_requests: float = 0.0
    _ttft: _Histogram = field(default_factory=lambda: _Histogram(TTFT_BUCKETS))
    _itl: _Histogram = field(default_factory=lambda: _Histogram(ITL_BUCKETS))
    _e2e: _Histogram = field(default_factory=lambda: _Histogram(E2E_BUCKETS))
    _queue: _Histogram = field(default_factory=lambda: _Histogram(E2E_BUCKETS))

    def demand(self, now: float) -> float:
        """Demand as a share of capacity, 0..1."""
        t = now - self.started
        return min(max(self.base + self.swing * math.sin(2 * math.pi * t / self.period + self.phase), 0.0), 1.0)

    def true_generation_rate(self, now: float) -> float:
        """Generation tokens/s at ``now``, exactly."""
        return self.capacity * self.demand(now)

    def generation_tokens(self, now: float) -> float:
        """The generation counter: the integral of the rate since start (closed form)."""
        t = now - self.started
        w = 2 * math.pi / self.period
        integral = self.base * t - self.swing / w * (math.cos(w * t + self.phase) - math.cos(self.phase))
        return self.capacity * max(integral, 0.0)

    def render(self) -> str:
        """The ``/metrics`` body at this moment."""
        now = self.clock()
        generated = self.generation_tokens(now)
        requests = generated / self.tokens_per_request
        self._observe_latencies(requests - self._last_requests, self.demand(now))
        self._last_requests = requests
        return "\n".join(self._lines(now, generated, requests)) + "\n"

    def _observe_latencies(self, finished: float, load: float) -> None:
        if finished <= 0:
            return
        self._ttft.observe(0.05 + 0.6 * load**3, finished)
        self._itl.observe(0.012 + 0.03 * load**2, finished * self.tokens_per_request)
        self._e2e.observe(self.tokens_per_request * (0.012 + 0.03 * load**2), finished)
        self._queue.observe(0.002 + 8.0 * max(0.0, load - 0.8), finished)

    def _lines(self, now: float, generated: float, requests: float) -> list[str]:
        load = self.demand(now)
        labels = f'engine="0",model_name="{self.model}"'
        waiting = max(0.0, round((load - 0.8) * 60))
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{labels}}} {float(round(load * 48))}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} {waiting}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{labels}}} {min(0.98, 0.15 + 0.8 * load)}",
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{labels}}} {requests * self.prompt_tokens_per_request}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{labels}}} {generated}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{{labels},finished_reason="stop"}} {requests}',
        ]
        for family, histogram, help_text in (
            ("vllm:time_to_first_token_seconds", self._ttft, "Histogram of time to first token in seconds."),
            ("vllm:inter_token_latency_seconds", self._itl, "Histogram of inter-token latency in seconds."),
            ("vllm:e2e_request_latency_seconds", self._e2e, "Histogram of e2e request latency in seconds."),
            ("vllm:request_queue_time_seconds", self._queue, "Histogram of time spent in WAITING phase for request."),
        ):
            lines += [f"# HELP {family} {help_text}", f"# TYPE {family} histogram", *histogram.lines(family, labels)]
        return lines


def simulated_app(server: SimulatedVllm) -> web.Application:
    """An aiohttp app serving the simulated server's ``/metrics``."""

    async def metrics(_request: web.Request) -> web.Response:
        if server.down:
            return web.Response(status=503, text="engine is down\n")
        return web.Response(text=server.render(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app
