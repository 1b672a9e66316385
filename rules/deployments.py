"""Recording rules for deployments: the same figures as one exporter computes, across any number of nodes.

A deployment's servers may be spread over many exporters (prefill on one node, decode on others, a
frontend on a CPU node). Every exporter serves the join key ``inference_server_deployment_info
{server, deployment, role}`` next to its per-server series, and these rules add them up where all
nodes' series meet, with the exporter's own rules (``exporter/poll/deployments.py``):

- requests and tokens from the deployment's frontends when it has one anywhere, else from its
  ``decode`` and ``engine`` servers; never from prefill servers or workers;
- GPUs and cost from every server of the deployment.

``deployment_server:inference_counts_requests:info`` marks the servers whose requests and tokens are
their deployment's, and ``deployment_server:inference_counted_elsewhere:info`` the others; the fleet
sums per model use the second to count each request once.
"""

from __future__ import annotations

from typing import Any

SERVER = "job, instance, server"
"""Labels that identify one configured server of one exporter."""
INFO = "inference_server_deployment_info"
COUNTS = "deployment_server:inference_counts_requests:info"
ELSEWHERE = "deployment_server:inference_counted_elsewhere:info"
GENERATION = "deployment_model:inference_generation_tokens_per_second:sum"
GPUS = "deployment:inference_server_gpus:sum"
COST = "deployment:inference_server_cost_per_second:sum"
REQUESTS = "deployment_model:inference_requests_per_second:sum"
PROMPT = "deployment_model:inference_prompt_tokens_per_second:sum"
SERVING = "deployment_server:inference_serving_cost_per_second:value"
KNOWN = "deployment_phase:inference_serving_cost_per_second:known"
PHASES = "deployment_phase:inference_serving_cost_per_second:sum"

Rule = dict[str, Any]


def _record(name: str, expr: str) -> Rule:
    return {"record": name, "expr": expr}


def info(matchers: str = "", role: str = "") -> str:
    """The join key, selected by extra label ``matchers`` (a dashboard's variables) and a ``role`` regex."""
    labels = ", ".join(part for part in (f'role=~"{role}"' if role else "", matchers) if part)
    return f"{INFO}{{{labels}}}" if labels else INFO


def counting(matchers: str = "") -> str:
    """The join key of the servers that count their deployment's requests: its frontends, else its finishers."""
    frontends = f"group by (deployment) ({info(matchers, 'frontend')})"
    return f"{info(matchers, 'frontend')}\n  or ({info(matchers, 'engine|decode')} unless on(deployment) {frontends})"


def counted_elsewhere(matchers: str = "") -> str:
    """The join key of the servers whose requests and tokens their deployment counts from others."""
    return f"{info(matchers)} unless on({SERVER}) ({counting(matchers)})"


def by_deployment(metric: str, servers: str, keep: str = "deployment") -> str:
    """``metric`` of the servers whose join key is ``servers``, summed per ``keep`` labels."""
    labels = ", ".join(label for label in ("deployment", "role") if label in keep)
    return f"sum by ({keep}) (\n  {metric}\n    * on({SERVER}) group_left({labels}) ({servers})\n)"


def counting_rules() -> list[Rule]:
    """Which servers count their deployment's requests and tokens (run before every sum that uses them)."""
    return [_record(COUNTS, counting()), _record(ELSEWHERE, f"{INFO} unless on({SERVER}) {COUNTS}")]


def once(series: str, matchers: str = "") -> str:
    """``series`` less the servers whose requests and tokens their deployment counts from others."""
    return f"({series} unless on({SERVER}) ({counted_elsewhere(matchers)}))"


def figure_rules() -> list[Rule]:
    """Each deployment's tokens/s, requests/s, GPUs, cost, tokens/s per GPU and cost per request."""
    by_model = "deployment, model"
    return [
        _record(GENERATION, by_deployment("inference_generation_tokens_per_second", COUNTS, by_model)),
        _record(PROMPT, by_deployment("inference_prompt_tokens_per_second", COUNTS, by_model)),
        _record(REQUESTS, by_deployment("inference_requests_per_second", COUNTS, by_model)),
        _record(GPUS, by_deployment("inference_server_gpus", INFO)),
        _record(
            "deployment_role:inference_server_gpus:sum",
            by_deployment("inference_server_gpus", INFO, "deployment, role"),
        ),
        _record(COST, by_deployment("inference_server_cost_per_second", INFO)),
        _record("deployment:inference_generation_tokens_per_second:sum", f"sum by (deployment) ({GENERATION})"),
        _record(
            "deployment_model:inference_generation_tokens_per_second_per_gpu:ratio",
            f"{GENERATION}\n  / on(deployment) group_left() ({GPUS} > 0)",
        ),
        # the deployment's cost split between its models by generation tokens/s, as one exporter splits it
        _record(
            "deployment_model:inference_cost_per_request:ratio",
            f"{COST}\n"
            f"  * on(deployment) group_right() (\n"
            f"    {GENERATION}\n"
            f"      / on(deployment) group_left() (deployment:inference_generation_tokens_per_second:sum > 0)\n"
            f"  )\n"
            f"  / ({REQUESTS} > 0)",
        ),
    ]


def _engine_phase(phase: str, tokens: str) -> str:
    """Each engine's serving cost per second of ``phase``: its price of the phase times its tokens/s of it."""
    return (
        f'inference_cost_per_million_tokens{{phase="{phase}"}}\n'
        f"      * on({SERVER}, model) group_left() {tokens}\n"
        f"      * on({SERVER}) group_left(deployment) {info(role='engine')} / 1e6"
    )


def phase_rules() -> list[Rule]:
    """Each deployment's price per million tokens of each phase, and its energy per token (docs/deployments.md).

    A prefill server's serving cost (cost less idle cost) is prompt work, a decode server's is
    generation work, an engine's is split as its own prices say; the serving cost of the others
    (workers, frontends with GPUs) is spread over the two phases in proportion.
    """
    idle = "(inference_server_idle_cost_per_second or inference_server_cost_per_second * 0)"
    serving = (
        f"clamp_min(inference_server_cost_per_second - on({SERVER}) {idle}, 0)\n"
        f"  * on({SERVER}) group_left(deployment, role) {INFO}"
    )
    known = (
        "sum by (deployment, phase) (\n"
        f'    label_replace({SERVING}{{role="prefill"}}, "phase", "prompt", "", "")\n'
        f'  or label_replace({SERVING}{{role="decode"}}, "phase", "generation", "", "")\n'
        f"  or {_engine_phase('prompt', 'inference_prompt_tokens_per_second')}\n"
        f"  or {_engine_phase('generation', 'inference_generation_tokens_per_second')}\n"
        ")"
    )
    spread = f"sum by (deployment) ({SERVING}) / on(deployment) (sum by (deployment) ({KNOWN}) > 0)"
    tokens = (
        f'label_replace(sum by (deployment) ({PROMPT}), "phase", "prompt", "", "")\n'
        f'  or label_replace(sum by (deployment) ({GENERATION}), "phase", "generation", "", "")'
    )
    power = by_deployment("inference_server_power_watts", INFO)
    all_tokens = f"sum by (deployment) ({PROMPT}) + on(deployment) sum by (deployment) ({GENERATION})"
    return [
        _record(SERVING, serving),
        _record(KNOWN, known),
        _record(PHASES, f"{KNOWN}\n  * on(deployment) group_left() ({spread})"),
        _record(
            "deployment_phase:inference_cost_per_million_tokens:ratio",
            f"{PHASES}\n  / (({tokens}) > 0) * 1e6",
        ),
        _record(
            "deployment:inference_energy_joules_per_token:ratio",
            f"{power}\n  / (({all_tokens}) > 0)",
        ),
    ]
