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
from rules.deployments import ELSEWHERE, INFO
from rules.settings import Settings

SERVER = "job, instance, server"
"""Labels that identify one configured server of one exporter."""
MODEL = "job, instance, server, model"
"""Labels that identify one model of one server of one exporter."""

Rule = dict[str, Any]


def _record(name: str, expr: str) -> Rule:
    return {"record": name, "expr": expr}


def fleet_rules() -> list[Rule]:
    """Tokens/s, tokens/s per GPU, cost and energy per token, per model, for the whole fleet, per deployment.

    Rules of one group run in order: which servers count their deployment's requests comes first,
    so that the sums below count each request once (a frontend and its engines both see it).
    """
    return [*deployments.counting_rules(), *_per_model(), *_whole_fleet(), *deployments.figure_rules()]


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
