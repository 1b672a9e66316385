"""A simulated SGLang server: the same ``Workload`` as SGLang 0.5 reports it, with GPU time per phase.

What differs from vLLM, as the real server does it: token and request counters move when a request
*finishes* (whole requests only); scheduler families carry rank labels; prompt tokens served from
the radix cache are ``cached_tokens_total{cache_source}``; retracted requests' tokens are counted; and,
as with ``SGLANG_ENABLE_METRICS_DEVICE_TIMER=1`` and ``--enable-mfu-metrics``, the GPU time of every
forward pass of the whole batch is ``forward_execution_seconds_total{category}`` and the estimated
FLOPs per GPU ``estimated_flops_per_gpu_total``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from exporter.demo.simulator import Latencies, counter, gauge
from exporter.demo.workload import Workload


@dataclass
class SimulatedSglang(Workload):
    """One simulated SGLang server (one data-parallel group, tensor parallel over ``gpus``)."""

    retracted_share: float = 0.01
    """The share of prompt and generated tokens whose requests were retracted and computed again."""
    latencies: Latencies = field(default_factory=Latencies)

    def finished(self, now: float) -> float:
        """Whole requests finished since start: the token counters move by whole requests."""
        return float(math.floor(self.requests(now) + 1e-9))

    def render(self) -> str:
        """The ``/metrics`` body at this moment."""
        now = self.clock()
        self.latencies.observe(self.finished(now), self.demand(now), self.tokens_per_request)
        return "\n".join([*self._scheduler(now), *self._tokenizer(now)]) + "\n"

    def _scheduler(self, now: float) -> list[str]:
        ranks = f'engine_type="unified",model_name="{self.model}",moe_ep_rank="0",pp_rank="0",tp_rank="0"'
        retracted = self.retracted_share
        return [
            *gauge("sglang:num_running_reqs", "The number of running requests.", [(ranks, self.running(now))]),
            *gauge(
                "sglang:num_queue_reqs", "The number of requests in the waiting queue.", [(ranks, self.waiting(now))]
            ),
            *gauge("sglang:token_usage", "The token usage.", [(ranks, self.kv_cache_usage(now))]),
            *counter(
                "sglang:forward_execution_seconds_total",
                "Total time that GPU is busy executing model forward passes. Refer to ForwardMode for category labels.",
                [
                    (f'category="decode",{ranks}', self.decode_seconds(now)),
                    (f'category="extend",{ranks}', self.prefill_seconds(now)),
                ],
            ),
            *counter(
                "sglang:estimated_flops_per_gpu_total",
                "Estimated number of floating point operations per GPU (for Model FLOPs Utilization calculations).",
                [(ranks, self.flops_per_gpu(now))],
            ),
            *counter(
                "sglang:num_retracted_input_tokens_total",
                "Total number of retracted input tokens.",
                [(ranks, math.floor(retracted * self.prompt_tokens(now)))],
            ),
            *counter(
                "sglang:num_retracted_output_tokens_total",
                "Total number of retracted output tokens.",
                [(ranks, math.floor(retracted * self.generation_tokens(now)))],
            ),
            *self.latencies.lines("sglang:", ranks, "queue_time_seconds"),
        ]

    def _tokenizer(self, now: float) -> list[str]:
        labels = f'engine_type="unified",model_name="{self.model}"'
        done = self.finished(now)
        prompt = done * self.prompt_tokens_per_request
        return [
            *counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.", [(labels, prompt)]),
            *counter(
                "sglang:generation_tokens_total",
                "Number of generation tokens processed.",
                [(labels, done * self.tokens_per_request)],
            ),
            *counter(
                "sglang:cached_tokens_total",
                "Number of cached prompt tokens by source (device/host/storage).",
                [(f'cache_source="device",{labels}', math.floor(prompt * self.cache_share))],
            ),
            *counter("sglang:num_requests_total", "Number of requests processed.", [(labels, done)]),
        ]
