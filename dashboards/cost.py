"""Cost and efficiency: what the GPUs cost and where it goes, what a prompt and a generated token cost.

For finance and capacity planning: the nodes' GPU cost per hour by state (serving, idle, GPUs no
server claims), the price of a million prompt and generated tokens by model (and how each server
splits its cost between the two), the prefix cache's effect, work recomputed after retractions,
energy per token, and achieved FLOP/s against the GPUs' peak. Costs per second are shown per hour.
"""

from __future__ import annotations

from dashboards.grafana import (
    CURRENCY_UNIT,
    JOULES,
    MODEL,
    NODE,
    RATIO,
    SERVER,
    STATE,
    TOKENS_PER_SECOND,
    Json,
    Panel,
    Row,
    dashboard,
    stat,
    table,
    target,
    timeseries,
)
from rules.deployments import counting, once

UID = "inference-cost"
HOUR = 3600
FLOPS = "flops"
"""Grafana's FLOP/s unit (scales to TFLOP/s, PFLOP/s)."""
SERVER_LABELS = "job, instance, server"
MODEL_LABELS = "job, instance, server, model"
SERVER_COST = f"inference_server_cost_per_second{{{SERVER}}}"
IDLE_COST = f"inference_server_idle_cost_per_second{{{SERVER}}}"
SERVING = f"sum({SERVER_COST}) - (sum({IDLE_COST}) or vector(0))"
"""The serving cost of the selected servers: their cost less its idle part (all of it where idle is unknown)."""
UNATTRIBUTED = f"sum(inference_unattributed_gpu_cost_per_second{{{NODE}}})"
PHASE_TOKENS = {"prompt": "inference_prompt_tokens_per_second", "generation": "inference_generation_tokens_per_second"}


def price(phase: str, by: str = "") -> str:
    """The cost of a million tokens of ``phase``: every priced server's cost of it over its tokens, each once.

    The tokens of a server whose deployment's frontend counted them are left out, and the
    frontend's (which has no price of its own) come in, as the fleet rules count them.
    """
    group = f" by ({by})" if by else ""
    prices = f'inference_cost_per_million_tokens{{{MODEL}, phase="{phase}"}}'
    tokens = f"{PHASE_TOKENS[phase]}{{{MODEL}}}"
    priced = once(f"({tokens} and on({MODEL_LABELS}) {prices})", NODE)
    counted = f"{priced} or ({tokens} and on({SERVER_LABELS}) ({counting(NODE)}))"
    return f"sum{group} ({prices} * on({MODEL_LABELS}) group_left() {tokens}) / sum{group} ({counted})"


def per_model(metric: str) -> str:
    """A per-model series of the selected servers and models."""
    return f"{metric}{{{MODEL}}}"


ALL_TOKENS = (
    f"({per_model('inference_prompt_tokens_per_second')} + {per_model('inference_generation_tokens_per_second')})"
)
"""Prompt plus generated tokens/s, per model (each server's own: a weight for its per-token figures)."""


def weighted(metric: str, weights: str, by: str = "") -> str:
    """Average of a per-model gauge over the selected models, weighted by the ``weights`` series where both exist."""
    group = f" by ({by})" if by else ""
    series = per_model(metric)
    return (
        f"sum{group} ({series} * on({MODEL_LABELS}) {weights}) / sum{group} ({weights} and on({MODEL_LABELS}) {series})"
    )


def _now() -> list[Panel | Row]:
    return [
        stat(
            "Node cost per hour",
            "What every GPU of the selected nodes costs per hour: prices, plus electricity where priced.",
            CURRENCY_UNIT,
            target(f"sum(inference_node_cost_per_second{{{NODE}}}) * {HOUR}"),
        ),
        stat(
            "Serving per hour",
            "The selected servers' cost while they had work, per hour (their cost less its idle part).",
            CURRENCY_UNIT,
            target(f"({SERVING}) * {HOUR}"),
        ),
        stat(
            "Idle per hour",
            "The selected servers' cost while no request ran and no token was counted, per hour.",
            CURRENCY_UNIT,
            target(f"sum({IDLE_COST}) * {HOUR}"),
        ),
        stat(
            "Unclaimed GPUs per hour",
            "What the GPUs that no server claims (or whose server is down) cost per hour.",
            CURRENCY_UNIT,
            target(f"{UNATTRIBUTED} * {HOUR}"),
        ),
        stat(
            "Prompt, per 1M tokens",
            "Cost of one million prompt tokens: the prompt phase's share of the serving cost over its tokens.",
            CURRENCY_UNIT,
            target(price("prompt")),
        ),
        stat(
            "Generated, per 1M tokens",
            "Cost of one million generated tokens: the generation phase's share of the serving cost over its tokens.",
            CURRENCY_UNIT,
            target(price("generation")),
        ),
        stat(
            "Prompt cache hits",
            "Share of prompt tokens served from the prefix cache, over the models that report it.",
            RATIO,
            target(weighted("inference_prompt_cache_hit_ratio", per_model("inference_prompt_tokens_per_second"))),
        ),
        stat(
            "FLOP utilization",
            "The servers' estimated FLOP/s per GPU over the GPUs' dense BF16 peak, weighted by GPUs.",
            RATIO,
            target(
                f"sum(inference_model_flops_utilization_ratio{{{MODEL}}} * on({SERVER_LABELS}) group_left() "
                f"inference_server_gpus{{{SERVER}}}) / sum(inference_server_gpus{{{SERVER}}} "
                f"and on({SERVER_LABELS}) inference_model_flops_utilization_ratio{{{MODEL}}})"
            ),
        ),
    ]


def _by_state() -> list[Panel | Row]:
    return [
        Row("Where the GPU cost goes"),
        timeseries(
            "GPU cost per hour by state",
            "Serving, idle and unclaimed GPUs; together they are what the nodes' GPUs cost.",
            CURRENCY_UNIT,
            target(f"({SERVING}) * {HOUR}", "serving"),
            target(f"sum({IDLE_COST}) * {HOUR}", "idle"),
            target(f"{UNATTRIBUTED} * {HOUR}", "unclaimed GPUs"),
            width=12,
        ),
        timeseries(
            "Idle cost per hour by server",
            "Each server's cost while it had nothing to do: a candidate for fewer GPUs or a shared pool.",
            CURRENCY_UNIT,
            target(f"{IDLE_COST} * {HOUR}", "{{server}} ({{instance}})"),
            width=12,
        ),
    ]


def _prices() -> list[Panel | Row]:
    return [
        Row("Price per million tokens"),
        timeseries(
            "Prompt, per 1M tokens, by model",
            "Cost of one million prompt tokens per model (cached prompt tokens priced by the configured weight).",
            CURRENCY_UNIT,
            target(price("prompt", "model"), "{{model}}"),
            width=9,
        ),
        timeseries(
            "Generated, per 1M tokens, by model",
            "Cost of one million generated tokens per model.",
            CURRENCY_UNIT,
            target(price("generation", "model"), "{{model}}"),
            width=9,
        ),
        table(
            "How each server splits its cost",
            "gpu_time: by the GPU time the server measured per phase; token_weight: by the configured token weight.",
            STATE,
            target(f"inference_cost_split_info{{{SERVER}}}", table=True),
            ("Value", "job"),
            width=6,
        ),
    ]


def _cache_and_waste() -> list[Panel | Row]:
    return [
        Row("Prefix cache and recomputed work"),
        timeseries(
            "Prompt cache hit ratio by model",
            "Share of prompt tokens served from the prefix cache instead of computed.",
            RATIO,
            target(
                weighted("inference_prompt_cache_hit_ratio", per_model("inference_prompt_tokens_per_second"), "model"),
                "{{model}}",
            ),
            min=0,
            max=1,
        ),
        timeseries(
            "Recomputed tokens/s by phase",
            "Tokens whose KV cache was dropped to free memory (retraction) and must be computed again, where counted.",
            TOKENS_PER_SECOND,
            target(
                f"sum by (model, phase) (rate(inference_recomputed_tokens_total{{{MODEL}}}[$__rate_interval]))",
                "{{model}} {{phase}}",
            ),
        ),
    ]


def _energy_and_compute() -> list[Panel | Row]:
    return [
        Row("Energy and compute"),
        timeseries(
            "Energy per token by model",
            "GPU energy per prompt-plus-generated token, and per generated token.",
            JOULES,
            target(
                weighted("inference_energy_joules_per_token", ALL_TOKENS, "model"),
                "{{model}} all tokens",
            ),
            target(
                weighted(
                    "inference_energy_joules_per_generation_token",
                    per_model("inference_generation_tokens_per_second"),
                    "model",
                ),
                "{{model}} generated",
            ),
            width=8,
        ),
        timeseries(
            "FLOP/s per GPU by server",
            "The servers' own estimate of the floating-point operations per second on each of their GPUs.",
            FLOPS,
            target(f"inference_flops_per_second_per_gpu{{{MODEL}}}", "{{server}} {{model}} ({{instance}})"),
            width=8,
        ),
        timeseries(
            "FLOP utilization by server",
            "Estimated FLOP/s per GPU over the GPUs' dense BF16 peak (gpu.peak_flops overrides the built-in table).",
            RATIO,
            target(f"inference_model_flops_utilization_ratio{{{MODEL}}}", "{{server}} {{model}} ({{instance}})"),
            width=8,
            min=0,
        ),
    ]


def build() -> Json:
    """The cost and efficiency dashboard."""
    return dashboard(
        UID,
        "Inference / Cost and efficiency",
        "What the GPUs cost by state, the price of prompt and generated tokens, cache, recomputed work, energy, MFU.",
        ("job", "instance", "server", "model"),
        [*_now(), *_by_state(), *_prices(), *_cache_and_waste(), *_energy_and_compute()],
    )
