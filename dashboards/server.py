"""Server and model detail: throughput, batch and queue, KV cache, latency percentiles, cost, and health.

Latency percentiles come from the normalized histograms (``histogram_quantile`` over the bucket
rates), one line per percentile and server. Series keep ``instance`` apart, so two nodes that run
servers of the same name never blend.
"""

from __future__ import annotations

from typing import Any

from dashboards.grafana import (
    CURRENCY_UNIT,
    JOULES,
    MODEL,
    RATIO,
    REQUESTS,
    REQUESTS_PER_SECOND,
    SECONDS,
    SERVER,
    TOKENS_PER_SECOND,
    WATTS,
    Json,
    Panel,
    Row,
    dashboard,
    state_timeline,
    target,
    timeseries,
    value_map,
)

UID = "inference-server"
PER_MODEL = "{{server}} {{model}} ({{instance}})"
PER_SERVER = "{{server}} ({{instance}})"
PERCENTILES = (0.5, 0.9, 0.99)


def _model_series(title: str, description: str, unit: str, metric: str, **options: Any) -> Panel:
    return timeseries(title, description, unit, target(f"{metric}{{{MODEL}}}", PER_MODEL), width=8, **options)


def _throughput() -> list[Panel | Row]:
    return [
        Row("Throughput"),
        _model_series(
            "Generation tokens/s",
            "Generated tokens per second.",
            TOKENS_PER_SECOND,
            "inference_generation_tokens_per_second",
        ),
        _model_series(
            "Tokens/s per GPU",
            "Generation tokens/s divided by the server's GPUs.",
            TOKENS_PER_SECOND,
            "inference_generation_tokens_per_second_per_gpu",
        ),
        _model_series(
            "Prompt tokens/s",
            "Prompt (prefill) tokens per second.",
            TOKENS_PER_SECOND,
            "inference_prompt_tokens_per_second",
        ),
        _model_series(
            "Requests/s", "Requests finished per second.", REQUESTS_PER_SECOND, "inference_requests_per_second"
        ),
        timeseries(
            "Running vs waiting",
            "Requests in the running batch, and requests queued for a slot.",
            REQUESTS,
            target(f"inference_requests_running{{{MODEL}}}", "running " + PER_MODEL),
            target(f"inference_requests_waiting{{{MODEL}}}", "waiting " + PER_MODEL),
            width=8,
        ),
        _model_series(
            "KV-cache use", "Share of the KV cache in use.", RATIO, "inference_kv_cache_usage_ratio", min=0, max=1
        ),
    ]


def quantiles(histogram: str) -> list[Json]:
    """One target per percentile of a normalized histogram, per server and model."""
    buckets = f"rate({histogram}_bucket{{{MODEL}}}[$__rate_interval])"
    return [
        target(
            f"histogram_quantile({q}, sum by (job, instance, server, model, le) ({buckets}))",
            f"p{q * 100:g} {PER_MODEL}",
        )
        for q in PERCENTILES
    ]


def _latency() -> list[Panel | Row]:
    histograms = (
        ("Time to first token", "From request arrival to its first token.", "inference_time_to_first_token_seconds"),
        ("Inter-token latency", "Between consecutive generated tokens.", "inference_inter_token_latency_seconds"),
        ("End-to-end latency", "From request arrival to its last token.", "inference_e2e_request_latency_seconds"),
        ("Queue time", "Time requests waited before they ran.", "inference_request_queue_time_seconds"),
    )
    panels: list[Panel | Row] = [Row("Latency percentiles")]
    for title, description, histogram in histograms:
        panels.append(
            timeseries(title, f"p50, p90 and p99: {description.lower()}", SECONDS, *quantiles(histogram), width=6)
        )
    return panels


def _cost() -> list[Panel | Row]:
    return [
        Row("Cost and energy"),
        _model_series(
            "Cost per request",
            "Cost of one finished request over the rate window.",
            CURRENCY_UNIT,
            "inference_cost_per_request",
        ),
        _model_series(
            "Cost per 1M generation tokens",
            "Cost of one million generated tokens over the rate window.",
            CURRENCY_UNIT,
            "inference_cost_per_million_generation_tokens",
        ),
        _model_series(
            "Energy per generation token",
            "GPU energy per generated token over the rate window.",
            JOULES,
            "inference_energy_joules_per_generation_token",
        ),
        timeseries(
            "Cost per hour",
            "What the server's share of its GPUs costs per hour (with electricity where priced).",
            CURRENCY_UNIT,
            target(f"inference_server_cost_per_second{{{SERVER}}} * 3600", PER_SERVER),
        ),
        timeseries(
            "Power",
            "The server's share of its GPUs' average power.",
            WATTS,
            target(f"inference_server_power_watts{{{SERVER}}}", PER_SERVER),
        ),
    ]


def _health() -> list[Panel | Row]:
    return [
        Row("Health"),
        state_timeline(
            "Server up",
            "Whether the exporter could read the server's /metrics, poll by poll.",
            target(f"inference_server_up{{{SERVER}}}", PER_SERVER),
            value_map(("0", "down", "red"), ("1", "up", "green")),
            width=24,
            height=6,
        ),
        timeseries(
            "Time since last successful poll",
            "Seconds since the exporter last read the server successfully; grows while it is down.",
            SECONDS,
            target(f"time() - inference_server_last_success_timestamp_seconds{{{SERVER}}}", PER_SERVER),
        ),
        timeseries(
            "Poll duration",
            "Wall time of each poll of the server (fetch and parse).",
            SECONDS,
            target(f"inference_server_poll_duration_seconds{{{SERVER}}}", PER_SERVER),
        ),
    ]


def build() -> Json:
    """The server and model detail dashboard."""
    return dashboard(
        UID,
        "Inference / Server and model",
        "One server and model in depth: throughput, batch, KV cache, latency percentiles, cost and health.",
        ("job", "instance", "server", "model"),
        [*_throughput(), *_latency(), *_cost(), *_health()],
    )
