"""The load of a simulated inference server, with every count it implies in closed form.

Demand repeats in cycles of ``period`` seconds: for the first ``active_share`` of each cycle it
follows ``base + swing·sin(2π s + phase)`` (``s``: the position in cycles), a share of the server's
``capacity`` of generated tokens per second; for the rest of the cycle the server is idle (no request,
no token). Every counter a server reports is an exact function of the integral of that demand, so
tests know the truth at any moment: the tokens of each kind, the GPU time of each phase, the FLOPs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Workload:
    """What one simulated server does, as functions of its clock."""

    model: str
    capacity: float = 2000.0
    """Generated tokens per second at full demand."""
    base: float = 0.6
    swing: float = 0.3
    period: float = 600.0
    phase: float = 0.0
    active_share: float = 1.0
    """The share of each cycle with requests; the rest is idle. 1: never idle."""
    cycle_offset: float = 0.0
    """Where in its cycle the server starts, 0..1."""
    tokens_per_request: float = 256.0
    prompt_tokens_per_request: float = 512.0
    cache_share: float = 0.0
    """The share of prompt tokens served from the prefix cache."""
    prefill_share: float = 0.3
    """The share of the GPU's busy time spent on prefill passes."""
    flops_per_token: float = 1.4e11
    """Forward-pass FLOPs per computed token (about 2 × parameters)."""
    gpus: int = 4
    """GPUs the model is split over (tensor parallel): the per-GPU FLOP counter divides by it."""
    clock: Callable[[], float] = time.monotonic
    started: float = field(default_factory=time.monotonic)
    down: bool = False
    """When true, ``/metrics`` answers 503 (a server that is down)."""

    def _cycles(self, now: float) -> float:
        return max(now - self.started, 0.0) / self.period + self.cycle_offset

    def is_idle(self, now: float) -> bool:
        """Whether the server is in the idle part of its cycle at ``now``."""
        return self._cycles(now) % 1.0 >= self.active_share

    def demand(self, now: float) -> float:
        """Demand as a share of capacity, 0..1 (0 while idle)."""
        if self.is_idle(now):
            return 0.0
        position = self._cycles(now) % 1.0
        return min(max(self.base + self.swing * math.sin(2 * math.pi * position + self.phase), 0.0), 1.0)

    def _cycle_integral(self, position: float) -> float:
        """Demand × seconds from the start of a cycle to ``position`` (0..1) in it, in closed form."""
        x = min(position, self.active_share)
        waves = (math.cos(2 * math.pi * x + self.phase) - math.cos(self.phase)) / (2 * math.pi)
        return self.period * (self.base * x - self.swing * waves)

    def _integral_at(self, cycles: float) -> float:
        whole = math.floor(cycles)
        return whole * self._cycle_integral(1.0) + self._cycle_integral(cycles - whole)

    def busy_seconds(self, now: float) -> float:
        """The integral of demand since start: GPU-busy seconds, and generated tokens ÷ capacity."""
        return max(self._integral_at(self._cycles(now)) - self._integral_at(self.cycle_offset), 0.0)

    def true_generation_rate(self, now: float) -> float:
        """Generation tokens/s at ``now``, exactly."""
        return self.capacity * self.demand(now)

    def generation_tokens(self, now: float) -> float:
        """Tokens generated since start (every step counted, as vLLM counts)."""
        return self.capacity * self.busy_seconds(now)

    def requests(self, now: float) -> float:
        """Requests finished since start, a fractional count (each step's share of a request)."""
        return self.generation_tokens(now) / self.tokens_per_request

    def prompt_tokens(self, now: float) -> float:
        """Prompt tokens since start, cached ones included."""
        return self.requests(now) * self.prompt_tokens_per_request

    def cached_prompt_tokens(self, now: float) -> float:
        """Prompt tokens served from the prefix cache since start."""
        return self.prompt_tokens(now) * self.cache_share

    def prefill_seconds(self, now: float) -> float:
        """GPU seconds of prefill passes since start."""
        return self.prefill_share * self.busy_seconds(now)

    def decode_seconds(self, now: float) -> float:
        """GPU seconds of decode passes since start."""
        return (1.0 - self.prefill_share) * self.busy_seconds(now)

    def flops_per_gpu(self, now: float) -> float:
        """Estimated FLOPs per GPU since start: computed (uncached) prompt tokens plus generated ones."""
        computed = self.prompt_tokens(now) - self.cached_prompt_tokens(now) + self.generation_tokens(now)
        return self.flops_per_token * computed / self.gpus

    def running(self, now: float) -> float:
        """Requests in the running batch."""
        return float(round(self.demand(now) * 48))

    def waiting(self, now: float) -> float:
        """Requests queued: some once demand passes 80 % of capacity."""
        return float(max(0, round((self.demand(now) - 0.8) * 60)))

    def kv_cache_usage(self, now: float) -> float:
        """Share of the KV cache in use."""
        return min(0.98, 0.15 + 0.8 * self.demand(now)) if not self.is_idle(now) else 0.0

    def energy_joules(self, idle_watts: float, max_watts: float) -> Callable[[float], float]:
        """The closed-form energy counter of a GPU of this server whose load is ``demand``."""
        return lambda now: idle_watts * max(now - self.started, 0.0) + (max_watts - idle_watts) * self.busy_seconds(now)
