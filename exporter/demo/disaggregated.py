"""A simulated disaggregated deployment: one prefill server, two decode servers and a Dynamo frontend.

All four serve one stream of requests (one ``Workload``), so they agree as real ones do: the
frontend sees every request once; the prefill server computes every prompt and, as vLLM does behind
a KV-transfer connector, finishes each request after its first token; each decode server takes its
share of the requests, receives their prompts' KV cache (which vLLM counts as cached prompt tokens)
and generates the rest. Counting the frontend alone, or the decode servers alone, gives the
deployment's true tokens and requests; adding any two roles counts them twice, which is what the
exporter's deployments must not do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.demo.simulator import E2E_BUCKETS, TTFT_BUCKETS, Latencies, _Histogram, counter, gauge
from exporter.demo.workload import Workload

DECODE_SHARES = (0.6, 0.4)
"""Each decode server's share of the requests (a router balances them by load, not evenly)."""


@dataclass
class PrefillServer:
    """The prefill server of the deployment, in vLLM's families."""

    workload: Workload
    down: bool = False

    def render(self) -> str:
        """The ``/metrics`` body at this moment."""
        w, now = self.workload, self.workload.clock()
        labels = f'engine="0",model_name="{w.model}"'
        requests = w.requests(now)
        computed = w.prompt_tokens(now) - w.cached_prompt_tokens(now)
        return _body(
            [
                *gauge(
                    "vllm:num_requests_running",
                    "Requests in model execution batches.",
                    [(labels, float(round(w.demand(now) * 6)))],
                ),
                *gauge("vllm:num_requests_waiting", "Requests waiting to be processed.", [(labels, 0.0)]),
                *gauge("vllm:kv_cache_usage_perc", "KV-cache usage.", [(labels, 0.3 * w.kv_cache_usage(now))]),
                *counter("vllm:prompt_tokens_total", "Prefill tokens processed.", [(labels, w.prompt_tokens(now))]),
                *counter(
                    "vllm:prompt_tokens_cached_total", "Cached prompt tokens.", [(labels, w.cached_prompt_tokens(now))]
                ),
                *counter("vllm:generation_tokens_total", "Generation tokens processed.", [(labels, requests)]),
                *counter(
                    "vllm:request_success_total",
                    "Successfully processed requests.",
                    [(f'{labels},finished_reason="length"', requests)],
                ),
                *counter(
                    "vllm:estimated_flops_per_gpu_total",
                    "Estimated floating point operations per GPU.",
                    [(labels, w.flops_per_token * (computed + requests) / w.gpus)],
                ),
            ]
        )


@dataclass
class DecodeServer:
    """One decode server of the deployment, with ``share`` of its requests, in vLLM's families."""

    workload: Workload
    share: float
    gpus: int = 1
    down: bool = False
    latencies: Latencies = field(default_factory=Latencies)

    def render(self) -> str:
        """The ``/metrics`` body at this moment."""
        w, now, share = self.workload, self.workload.clock(), self.share
        labels = f'engine="0",model_name="{w.model}"'
        generated, requests, prompts = (
            share * w.generation_tokens(now),
            share * w.requests(now),
            share * w.prompt_tokens(now),
        )
        self.latencies.observe(requests, w.demand(now), w.tokens_per_request)
        return _body(
            [
                *gauge(
                    "vllm:num_requests_running",
                    "Requests in model execution batches.",
                    [(labels, share * w.running(now))],
                ),
                *gauge(
                    "vllm:num_requests_waiting", "Requests waiting to be processed.", [(labels, share * w.waiting(now))]
                ),
                *gauge("vllm:kv_cache_usage_perc", "KV-cache usage.", [(labels, w.kv_cache_usage(now))]),
                *counter("vllm:prompt_tokens_total", "Prefill tokens processed.", [(labels, prompts)]),
                *counter(
                    "vllm:prompt_tokens_cached_total", "Cached prompt tokens (local + external).", [(labels, prompts)]
                ),
                *counter("vllm:generation_tokens_total", "Generation tokens processed.", [(labels, generated)]),
                *counter(
                    "vllm:request_success_total",
                    "Successfully processed requests.",
                    [(f'{labels},finished_reason="stop"', requests)],
                ),
                *counter(
                    "vllm:estimated_flops_per_gpu_total",
                    "Estimated floating point operations per GPU.",
                    [(labels, w.flops_per_token * generated / self.gpus)],
                ),
                *self.latencies.lines("vllm:", labels, "request_queue_time_seconds"),
            ]
        )


@dataclass
class DynamoFrontend:
    """The deployment's NVIDIA Dynamo frontend: every request once, the model lower-cased as Dynamo 0.8 writes it."""

    workload: Workload
    down: bool = False
    ttft: _Histogram = field(default_factory=lambda: _Histogram(TTFT_BUCKETS))
    duration: _Histogram = field(default_factory=lambda: _Histogram(E2E_BUCKETS))
    _last_requests: float = 0.0

    def render(self) -> str:
        """The ``/metrics`` body at this moment."""
        w, now = self.workload, self.workload.clock()
        requests = w.requests(now)
        finished, self._last_requests = requests - self._last_requests, requests
        if finished > 0:
            load = w.demand(now)
            self.ttft.observe(0.08 + 0.5 * load**3, finished)
            self.duration.observe(w.tokens_per_request * (0.011 + 0.02 * load**2), finished)
        model = f'model="{w.model.lower()}"'
        prefix = "dynamo_frontend_"
        return _body(
            [
                *gauge(f"{prefix}inflight_requests", "Number of inflight requests", [(model, w.running(now))]),
                *gauge(
                    f"{prefix}queued_requests", "Number of requests in HTTP processing queue", [(model, w.waiting(now))]
                ),
                *gauge(
                    f"{prefix}model_context_length",
                    "Maximum context length in tokens for a worker serving the model",
                    [(f'model="{w.model}"', 131072.0)],
                ),
                *counter(
                    f"{prefix}output_tokens_total",
                    "Total number of output tokens generated",
                    [(model, w.generation_tokens(now))],
                ),
                *counter(
                    f"{prefix}requests_total",
                    "Total number of LLM requests processed",
                    [(f'endpoint="chat_completions",{model},request_type="stream",status="success"', requests)],
                ),
                *_histogram_sums(
                    f"{prefix}input_sequence_tokens",
                    "Input sequence length in tokens",
                    model,
                    w.prompt_tokens(now),
                    requests,
                ),
                "# HELP dynamo_frontend_time_to_first_token_seconds Time to first token in seconds",
                "# TYPE dynamo_frontend_time_to_first_token_seconds histogram",
                *self.ttft.lines(f"{prefix}time_to_first_token_seconds", model),
                "# HELP dynamo_frontend_request_duration_seconds Duration of LLM requests",
                "# TYPE dynamo_frontend_request_duration_seconds histogram",
                *self.duration.lines(f"{prefix}request_duration_seconds", model),
            ]
        )


def _histogram_sums(name: str, help_text: str, labels: str, total: float, count: float) -> list[str]:
    """A histogram of token counts as Dynamo renders its sequence lengths: one bucket and its sum."""
    return [
        f"# HELP {name} {help_text}",
        f"# TYPE {name} histogram",
        f'{name}_bucket{{{labels},le="+Inf"}} {count}',
        f"{name}_sum{{{labels}}} {total}",
        f"{name}_count{{{labels}}} {count}",
    ]


def _body(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def servers(workload: Workload) -> tuple[DynamoFrontend, PrefillServer, DecodeServer, DecodeServer]:
    """The deployment's frontend, prefill server and two decode servers, on one workload."""
    first, second = (DecodeServer(workload, share) for share in DECODE_SHARES)
    return DynamoFrontend(workload), PrefillServer(workload), first, second
