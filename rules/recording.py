"""Recording rules: fleet views across many exporters, and the baselines of the throughput-drop alert.

Names follow ``level:metric:operations`` as kube-prometheus does. The level says which labels are
left: ``model:`` keeps only ``model``, a leading ``:`` keeps none (the whole fleet, or whatever
external labels Prometheus adds), and ``server_model:`` keeps every label of the per-server series.

With one exporter per node, these rules are how the product scales past one machine: each exporter
serves its node's numbers, and Prometheus (or Thanos or Mimir) adds them up.
"""

from __future__ import annotations

from typing import Any

from rules import deployments
from rules.deployments import COUNTS, ELSEWHERE, INFO
from rules.settings import Settings

SERVER = "job, instance, server"
"""Labels that identify one configured server of one exporter."""
MODEL = "job, instance, server, model"
"""Labels that identify one model of one server of one exporter."""

Rule = dict[str, Any]


def _record(name: str, expr: str) -> Rule:
    return {"record": name, "expr": expr}


def fleet_rules() -> list[Rule]:
    """Tokens/s, tokens/s per GPU, cost and energy per token, per model, for the whole fleet, per deployment;
    cost by state.

    Rules of one group run in order: which servers count their deployment's requests comes first,
    so that the sums below count each request once (a frontend and its engines both see it).
    """
    return [
        *deployments.counting_rules(),
        *_per_model(),
        *_whole_fleet(),
        *_cost_by_state(),
        *_per_phase(),
        *_efficiency(),
        *deployments.figure_rules(),
        *deployments.phase_rules(),
    ]


ONCE = f"unless on({SERVER}) {ELSEWHERE}"
"""Leaves out the servers whose requests and tokens their deployment's frontend already counts."""


def _per_model() -> list[Rule]:
    return [
        _record(
            "model:inference_generation_tokens_per_second:sum",
            f"sum by (model) (inference_generation_tokens_per_second {ONCE})",
        ),
        # GPUs of each server that generates for a model (a server with two models counts for both)
        _record(
            "model:inference_server_gpus:sum",
            "sum by (model) (\n"
            "  inference_server_gpus\n"
            f"    * on({SERVER}) group_right()\n"
            f"    group by ({MODEL}) (inference_generation_tokens_per_second)\n"
            ")",
        ),
        _record(
            "model:inference_generation_tokens_per_second_per_gpu:ratio",
            "model:inference_generation_tokens_per_second:sum\n  / (model:inference_server_gpus:sum > 0)",
        ),
        _record("model:inference_requests_per_second:sum", f"sum by (model) (inference_requests_per_second {ONCE})"),
        _record(
            "model:inference_cost_per_second:sum",
            "sum by (model) (\n"
            "  inference_cost_per_million_generation_tokens * inference_generation_tokens_per_second\n"
            ") / 1e6",
        ),
        _record(
            "model:inference_cost_per_million_generation_tokens:ratio",
            "model:inference_cost_per_second:sum\n  / (model:inference_generation_tokens_per_second:sum > 0) * 1e6",
        ),
        _record(
            "model:inference_cost_per_request:ratio",
            "model:inference_cost_per_second:sum\n  / (model:inference_requests_per_second:sum > 0)",
        ),
    ]


def _whole_fleet() -> list[Rule]:
    return [
        _record(":inference_generation_tokens_per_second:sum", f"sum(inference_generation_tokens_per_second {ONCE})"),
        # GPUs of the servers that generate, and of every server in a deployment (workers have no rates)
        _record(
            ":inference_server_gpus:sum",
            f"sum(\n  inference_server_gpus\n  and on({SERVER}) (inference_generation_tokens_per_second or {INFO})\n)",
        ),
        _record(
            ":inference_generation_tokens_per_second_per_gpu:ratio",
            ":inference_generation_tokens_per_second:sum\n  / (:inference_server_gpus:sum > 0)",
        ),
        _record(":inference_server_cost_per_second:sum", "sum(inference_server_cost_per_second)"),
        _record(
            ":inference_cost_per_million_generation_tokens:ratio",
            ":inference_server_cost_per_second:sum\n  / (:inference_generation_tokens_per_second:sum > 0) * 1e6",
        ),
        _record(
            ":inference_energy_joules_per_generation_token:ratio",
            "sum(inference_server_power_watts)\n  / (:inference_generation_tokens_per_second:sum > 0)",
        ),
    ]


def _cost_by_state() -> list[Rule]:
    """What the fleet's GPUs cost, by state: serving, idle (servers up with nothing to do), unattributed."""
    serving = "sum(inference_server_cost_per_second) - (sum(inference_server_idle_cost_per_second) or vector(0))"
    return [
        _record(":inference_node_cost_per_second:sum", "sum(inference_node_cost_per_second)"),
        _record(":inference_server_idle_cost_per_second:sum", "sum(inference_server_idle_cost_per_second)"),
        _record(
            "state:inference_gpu_cost_per_second:sum",
            f'label_replace({serving}, "state", "serving", "", "")\n'
            'or label_replace(sum(inference_server_idle_cost_per_second), "state", "idle", "", "")\n'
            'or label_replace(sum(inference_unattributed_gpu_cost_per_second), "state", "unattributed", "", "")',
        ),
        _record(
            ":inference_server_idle_cost_per_second:ratio",
            ":inference_server_idle_cost_per_second:sum\n  / (:inference_server_cost_per_second:sum > 0)",
        ),
    ]


PHASE_TOKENS = {"prompt": "inference_prompt_tokens_per_second", "generation": "inference_generation_tokens_per_second"}
"""The token rate behind each ``phase`` of ``inference_cost_per_million_tokens``."""


def _phase_sum(operator: str) -> str:
    """Per model and phase, the phase's tokens/s (``and``) or its cost (``*`` its price), each request once.

    Cost: every server that prices the phase. Tokens: those servers' tokens, less those of servers
    whose deployment's frontend already counted them, plus the tokens of the servers that count
    their deployment's requests (a frontend has no GPUs and no price of its own).
    """
    parts = []
    for phase, tokens in PHASE_TOKENS.items():
        phased = f'label_replace({tokens}, "phase", "{phase}", "", "")'
        priced = f"{phased}\n    {operator} on({MODEL}, phase) inference_cost_per_million_tokens"
        if operator == "and":
            priced = f"({priced}\n    {ONCE})\n  or ({phased} and on({SERVER}) {COUNTS})"
        parts.append(f"sum by (model, phase) (\n  {priced}\n)")
    if operator == "*":
        parts = [f"{part} / 1e6" for part in parts]
    return "\nor ".join(parts)


def _per_phase() -> list[Rule]:
    """Tokens/s, cost per second and cost per million tokens of each phase, per model and for the fleet."""
    return [
        _record("model_phase:inference_tokens_per_second:sum", _phase_sum("and")),
        _record("model_phase:inference_cost_per_second:sum", _phase_sum("*")),
        _record(
            "model_phase:inference_cost_per_million_tokens:ratio",
            "model_phase:inference_cost_per_second:sum\n  / (model_phase:inference_tokens_per_second:sum > 0) * 1e6",
        ),
        _record(
            "phase:inference_cost_per_million_tokens:ratio",
            "sum by (phase) (model_phase:inference_cost_per_second:sum)\n"
            "  / (sum by (phase) (model_phase:inference_tokens_per_second:sum) > 0) * 1e6",
        ),
    ]


def _efficiency() -> list[Rule]:
    """The fleet's prompt cache hit ratio, energy per token and FLOP utilization."""
    return [
        _record(
            ":inference_prompt_cache_hit:ratio",
            f"sum(inference_prompt_cache_hit_ratio * on({MODEL}) inference_prompt_tokens_per_second)\n"
            f"  / (sum(inference_prompt_tokens_per_second and on({MODEL}) inference_prompt_cache_hit_ratio) > 0)",
        ),
        _record(
            ":inference_energy_joules_per_token:ratio",
            "sum(inference_server_power_watts)\n"
            f"  / ((sum(inference_prompt_tokens_per_second {ONCE}) or vector(0))"
            " + :inference_generation_tokens_per_second:sum > 0)",
        ),
        _record(
            ":inference_model_flops_utilization:ratio",
            f"sum(inference_model_flops_utilization_ratio * on({SERVER}) group_left() inference_server_gpus)\n"
            f"  / (sum(inference_server_gpus and on({SERVER}) inference_model_flops_utilization_ratio) > 0)",
        ),
    ]


BASELINE = "server_model:inference_generation_tokens_per_second_per_gpu:baseline"
BASELINE_RATIO = "server_model:inference_generation_tokens_per_second_per_gpu:baseline_ratio"
RUNNING_BASELINE = "server_model:inference_requests_running:baseline"


def throughput_rules(settings: Settings) -> list[Rule]:
    """Each server's own baseline of tokens/s per GPU and of its running batch, and today's ratio to it."""
    window = settings.throughput_drop.baseline_window
    return [
        _record(BASELINE, f"avg_over_time(inference_generation_tokens_per_second_per_gpu[{window}])"),
        _record(BASELINE_RATIO, f"inference_generation_tokens_per_second_per_gpu\n  / {BASELINE}"),
        _record(RUNNING_BASELINE, f"avg_over_time(inference_requests_running[{window}])"),
    ]


def groups(settings: Settings) -> list[dict[str, Any]]:
    """The recording rule groups of ``rules/recording.yml``.

    The throughput baselines are not here: they sit in the throughput-drop alert's own group in
    ``rules/alerts.yml``, so that each evaluation compares today with a baseline computed at the same
    instant (rules of one group run in order; separate groups run on their own schedules).
    """
    return [{"name": "inference.fleet.rules", "interval": settings.evaluation_interval, "rules": fleet_rules()}]
