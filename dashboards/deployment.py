"""Deployments: replicas, frontends and prefill/decode pools seen as a whole, on one node or many.

Every figure counts each request once and every GPU of the deployment, with the rules one exporter
uses (``docs/deployments.md``), computed from the per-server series and the join key
``inference_server_deployment_info`` of every selected exporter, so a deployment spread over many
nodes reads the same as one on a single node. The queries are the ones the fleet recording rules
record (``rules/deployments.py`` builds both), so the dashboard works with or without those rules.
"""

from __future__ import annotations

from dashboards.grafana import (
    CURRENCY_UNIT,
    GPUS,
    NODE,
    REQUESTS,
    REQUESTS_PER_SECOND,
    TOKENS_PER_SECOND,
    Json,
    Panel,
    Row,
    dashboard,
    stat,
    target,
    timeseries,
)
from rules.deployments import by_deployment, counting, info

UID = "inference-deployment"
SELECTED = NODE + ', deployment=~"$deployment"'
MEMBERS = info(SELECTED)
COUNTING = counting(SELECTED)
GENERATION = by_deployment(f"inference_generation_tokens_per_second{{{NODE}}}", COUNTING, "deployment, model")
PROMPT = by_deployment(f"inference_prompt_tokens_per_second{{{NODE}}}", COUNTING, "deployment, model")
REQUESTS_RATE = by_deployment(f"inference_requests_per_second{{{NODE}}}", COUNTING, "deployment, model")
DEPLOYMENT_GPUS = by_deployment(f"inference_server_gpus{{{NODE}}}", MEMBERS)
COST = by_deployment(f"inference_server_cost_per_second{{{NODE}}}", MEMBERS)
PER_GPU = f"({GENERATION})\n  / on(deployment) group_left() (({DEPLOYMENT_GPUS}) > 0)"
COST_PER_REQUEST = (
    f"({COST})\n  * on(deployment) group_right() (\n    ({GENERATION})\n"
    f"      / on(deployment) group_left() (sum by (deployment) ({GENERATION}) > 0)\n  )\n  / (({REQUESTS_RATE}) > 0)"
)


def _now() -> list[Panel | Row]:
    return [
        stat(
            "Generation tokens/s",
            "Tokens generated per second by the selected deployments, each request counted once.",
            TOKENS_PER_SECOND,
            target(f"sum({GENERATION})"),
            width=4,
        ),
        stat(
            "Tokens/s per GPU",
            "Generation tokens/s over every GPU of the selected deployments, prefill and workers included.",
            TOKENS_PER_SECOND,
            target(f"sum({GENERATION}) / sum({DEPLOYMENT_GPUS})"),
            width=4,
        ),
        stat(
            "Cost per request",
            "What one finished request costs over every GPU of its deployment.",
            CURRENCY_UNIT,
            target(f"sum({COST}) / sum({REQUESTS_RATE})"),
            width=4,
        ),
        stat(
            "Requests/s",
            "Requests finished per second, from the frontends, else the decode and engine servers.",
            REQUESTS_PER_SECOND,
            target(f"sum({REQUESTS_RATE})"),
            width=4,
        ),
        stat(
            "GPUs",
            "GPUs of every server of the selected deployments.",
            GPUS,
            target(f"sum({DEPLOYMENT_GPUS})"),
            width=4,
        ),
        stat(
            "Cost per hour",
            "What the selected deployments' GPUs cost per hour (with electricity where priced).",
            CURRENCY_UNIT,
            target(f"sum({COST}) * 3600"),
            width=4,
        ),
    ]


def _efficiency() -> list[Panel | Row]:
    return [
        Row("Efficiency and cost"),
        timeseries(
            "Tokens/s per GPU by deployment",
            "Each deployment's generation tokens/s over all of its GPUs: the figure to compare across layouts.",
            TOKENS_PER_SECOND,
            target(PER_GPU, "{{deployment}} {{model}}"),
            width=8,
        ),
        timeseries(
            "Cost per request by deployment",
            "The deployment's cost per second, split between its models by tokens/s, over its requests/s.",
            CURRENCY_UNIT,
            target(COST_PER_REQUEST, "{{deployment}} {{model}}"),
            width=8,
        ),
        timeseries(
            "Throughput by deployment",
            "Generated and prompt tokens/s, each request counted once.",
            TOKENS_PER_SECOND,
            target(GENERATION, "{{deployment}} {{model}} generated"),
            target(PROMPT, "{{deployment}} {{model}} prompt"),
            width=8,
        ),
    ]


def _roles() -> list[Panel | Row]:
    role_gpus = by_deployment(f"inference_server_gpus{{{NODE}}}", MEMBERS, "deployment, role")
    member_tps = by_deployment(f"inference_generation_tokens_per_second{{{NODE}}}", MEMBERS, "deployment, role, server")
    waiting = by_deployment(f"inference_requests_waiting{{{NODE}}}", MEMBERS, "deployment, role, server")
    return [
        Row("Servers by role"),
        timeseries(
            "GPUs by role",
            "GPUs of each role (engine, prefill, decode, frontend, worker) in each deployment.",
            GPUS,
            target(role_gpus, "{{deployment}} {{role}}"),
            width=8,
        ),
        timeseries(
            "Generation tokens/s by server",
            "What each server of a deployment generates: prefill servers next to nothing, decode servers the rest.",
            TOKENS_PER_SECOND,
            target(member_tps, "{{deployment}} {{role}} {{server}}"),
            width=8,
        ),
        timeseries(
            "Waiting requests by server",
            "Requests queued at each server of the deployments: where a pool is short of capacity.",
            REQUESTS,
            target(waiting, "{{deployment}} {{role}} {{server}}"),
            width=8,
        ),
    ]


def build() -> Json:
    """The deployments dashboard."""
    return dashboard(
        UID,
        "Inference / Deployments",
        "Replicas, frontends and prefill/decode pools as a whole: tokens/s per GPU and cost per request over all GPUs.",
        ("job", "instance", "deployment"),
        [*_now(), *_efficiency(), *_roles()],
    )
