"""The fleet overview: the first screen an SRE opens.

What the fleet generates, per GPU and per model, what it costs per million tokens and per request,
how much is waiting, how many GPUs serve, and the energy per token. Every number is an aggregate of
the per-server series of all selected exporters, so it works for one node or a thousand.
"""

from __future__ import annotations

from dashboards.grafana import (
    CURRENCY_UNIT,
    GPUS,
    JOULES,
    MODEL,
    NODE,
    RATIO,
    REQUESTS,
    REQUESTS_PER_SECOND,
    SERVER,
    TOKENS_PER_SECOND,
    WATTS,
    Json,
    Panel,
    Row,
    dashboard,
    stat,
    target,
    timeseries,
)
from rules.deployments import once

UID = "inference-fleet"
TPS = f"inference_generation_tokens_per_second{{{MODEL}}}"
REQUESTS_RATE = f"inference_requests_per_second{{{MODEL}}}"
TPS_ONCE = once(TPS, NODE)
"""Tokens/s of the selected servers, each request once: not again from a prefill or decode server
whose deployment's frontend already counted it (``docs/deployments.md``)."""
REQUESTS_ONCE = once(REQUESTS_RATE, NODE)
GPUS_SERVING = (
    f"inference_server_gpus{{{SERVER}}} and on(job, instance, server)"
    f" ({TPS} or inference_server_deployment_info{{{NODE}}})"
)
"""GPUs of the servers that generate for the selected models, or belong to a deployment (each server once)."""
GPUS_BY_MODEL = (
    f"inference_server_gpus{{{SERVER}}} * on(job, instance, server) group_right()"
    f" group by (job, instance, server, model) ({TPS})"
)
"""GPUs serving each model (a server with two models counts for both)."""


def weighted(metric: str, weight: str, by: str = "") -> str:
    """Average of ``metric`` over the selected series, weighted by ``weight`` (tokens/s, requests/s)."""
    group = f" by ({by})" if by else ""
    return f"sum{group} ({metric}{{{MODEL}}} * {weight}) / sum{group} ({weight})"


def _now() -> list[Panel | Row]:
    return [
        stat(
            "Generation tokens/s",
            "Tokens generated per second by the selected servers.",
            TOKENS_PER_SECOND,
            target(f"sum({TPS_ONCE})"),
        ),
        stat(
            "Tokens/s per GPU",
            "Generation tokens/s divided by the GPUs of the servers that produce them.",
            TOKENS_PER_SECOND,
            target(f"sum({TPS_ONCE}) / sum({GPUS_SERVING})"),
        ),
        stat(
            "Cost per 1M tokens",
            "Cost of one million generated tokens, averaged over models by their tokens/s.",
            CURRENCY_UNIT,
            target(weighted("inference_cost_per_million_generation_tokens", TPS)),
        ),
        stat(
            "Cost per request",
            "Cost of one finished request, averaged over models by their requests/s.",
            CURRENCY_UNIT,
            target(weighted("inference_cost_per_request", REQUESTS_RATE)),
        ),
        stat("Requests/s", "Requests finished per second.", REQUESTS_PER_SECOND, target(f"sum({REQUESTS_ONCE})")),
        stat(
            "Waiting requests",
            "Requests queued and not yet scheduled, over all selected servers.",
            REQUESTS,
            target(f"sum(inference_requests_waiting{{{MODEL}}})"),
        ),
        stat(
            "GPUs in use",
            "GPUs attributed to the selected servers that are up.",
            GPUS,
            target(
                f"sum(inference_server_gpus{{{SERVER}}} * on(job, instance, server) inference_server_up{{{SERVER}}})"
            ),
        ),
        stat(
            "Energy per token",
            "GPU energy per generated token, averaged over models by their tokens/s.",
            JOULES,
            target(weighted("inference_energy_joules_per_generation_token", TPS)),
        ),
    ]


def _throughput() -> list[Panel | Row]:
    return [
        Row("Throughput and demand"),
        timeseries(
            "Generation tokens/s by model",
            "Tokens generated per second, summed over every server of each model.",
            TOKENS_PER_SECOND,
            target(f"sum by (model) ({TPS_ONCE})", "{{model}}"),
        ),
        timeseries(
            "Tokens/s per GPU by model",
            "Each model's generation tokens/s divided by the GPUs of the servers that serve it.",
            TOKENS_PER_SECOND,
            target(f"sum by (model) ({TPS_ONCE}) / sum by (model) ({GPUS_BY_MODEL})", "{{model}}"),
        ),
        timeseries(
            "Requests/s by model",
            "Requests finished per second.",
            REQUESTS_PER_SECOND,
            target(f"sum by (model) ({REQUESTS_ONCE})", "{{model}}"),
        ),
        timeseries(
            "Queue by model",
            "Requests waiting for a slot, and requests in the running batch.",
            REQUESTS,
            target(f"sum by (model) (inference_requests_waiting{{{MODEL}}})", "{{model}} waiting"),
            target(f"sum by (model) (inference_requests_running{{{MODEL}}})", "{{model}} running"),
        ),
    ]


def _cost() -> list[Panel | Row]:
    return [
        Row("Cost and energy"),
        timeseries(
            "Cost per 1M generation tokens by model",
            "What one million generated tokens cost, from GPU prices (and electricity where priced).",
            CURRENCY_UNIT,
            target(weighted("inference_cost_per_million_generation_tokens", TPS, "model"), "{{model}}"),
            width=8,
        ),
        timeseries(
            "Cost per request by model",
            "What one finished request costs.",
            CURRENCY_UNIT,
            target(weighted("inference_cost_per_request", REQUESTS_RATE, "model"), "{{model}}"),
            width=8,
        ),
        timeseries(
            "Energy per generation token by model",
            "GPU energy (from NVML's energy counters) per generated token.",
            JOULES,
            target(weighted("inference_energy_joules_per_generation_token", TPS, "model"), "{{model}}"),
            width=8,
        ),
    ]


def _nodes() -> list[Panel | Row]:
    return [
        Row("Nodes"),
        timeseries(
            "GPU utilization by node",
            "Mean utilization of each node's GPUs.",
            RATIO,
            target(f"avg by (instance) (inference_gpu_utilization_ratio{{{NODE}}})", "{{instance}}"),
            min=0,
            max=1,
        ),
        timeseries(
            "GPU power by node",
            "Power drawn by each node's GPUs.",
            WATTS,
            target(f"sum by (instance) (inference_gpu_power_watts{{{NODE}}})", "{{instance}}"),
        ),
    ]


def build() -> Json:
    """The fleet overview dashboard."""
    return dashboard(
        UID,
        "Inference / Fleet overview",
        "Throughput, cost, queue and energy of every selected inference server, per model.",
        ("job", "instance", "server", "model"),
        [*_now(), *_throughput(), *_cost(), *_nodes()],
    )
