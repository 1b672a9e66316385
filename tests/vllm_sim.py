"""A simulated vLLM server on loopback whose throughput and demand a test sets while it runs.

Its ``/metrics`` is vLLM's text format (the metric names of tests/fixtures/servers/vllm-*.prom):
counters that grow at the rates the test set, integrated over wall time since the last change, and
the running batch, the queue and the KV cache as gauges. ``fail()`` makes it answer 503, as a
server that is up but broken does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.helpers import BackgroundLoop

COUNTERS = {
    "generation_tokens_total": "Number of generation tokens processed.",
    "prompt_tokens_total": "Number of prefill tokens processed.",
}
GAUGES = {
    "num_requests_running": "Number of requests in model execution batches.",
    "num_requests_waiting": "Number of requests waiting to be processed.",
    "kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
}


@dataclass
class Load:
    """What the server does now: rates per second and the gauges."""

    tokens_per_second: float
    requests_per_second: float
    running: float
    waiting: float = 0.0
    kv_cache: float = 0.4


@dataclass
class SimulatedVllm:
    """One model served at the rates of its current ``Load``."""

    model: str
    load: Load
    failing: bool = False
    url: str = ""
    _totals: dict[str, float] = field(default_factory=lambda: {"generation": 0.0, "prompt": 0.0, "requests": 0.0})
    _since: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, load: Load) -> None:
        """Change the load from now on (the counters keep what they have counted)."""
        with self._lock:
            self._advance()
            self.load = load

    def fail(self) -> None:
        self.failing = True

    def _advance(self) -> None:
        now = time.monotonic()
        elapsed, self._since = now - self._since, now
        self._totals["generation"] += self.load.tokens_per_second * elapsed
        self._totals["prompt"] += 4 * self.load.tokens_per_second * elapsed
        self._totals["requests"] += self.load.requests_per_second * elapsed

    def body(self) -> str:
        with self._lock:
            self._advance()
            labels = f'engine="0",model_name="{self.model}"'
            values = {
                "generation_tokens_total": self._totals["generation"],
                "prompt_tokens_total": self._totals["prompt"],
                "num_requests_running": self.load.running,
                "num_requests_waiting": self.load.waiting,
                "kv_cache_usage_perc": self.load.kv_cache,
            }
            requests = self._totals["requests"]
        lines = []
        for name, help_text in {**COUNTERS, **GAUGES}.items():
            kind = "counter" if name in COUNTERS else "gauge"
            lines += [
                f"# HELP vllm:{name} {help_text}",
                f"# TYPE vllm:{name} {kind}",
                f"vllm:{name}{{{labels}}} {values[name]!r}",
            ]
        lines += [
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{self.model}"}} {requests!r}',
        ]
        return "\n".join(lines) + "\n"

    async def handle(self, _request: web.Request) -> web.Response:
        if self.failing:
            return web.Response(status=503, text="engine dead\n")
        return web.Response(text=self.body(), content_type="text/plain")


def serve(loop: BackgroundLoop, server: SimulatedVllm) -> SimulatedVllm:
    """Serve ``server`` on the background loop; set and return it with its ``/metrics`` URL."""
    app = web.Application()
    app.router.add_get("/metrics", server.handle)
    server.url = loop.serve(app) + "/metrics"
    return server
