"""A deployment spread over three nodes gets, from the fleet rules, the figures one exporter computes.

Four simulated vLLM-format servers on loopback play a disaggregated deployment at steady rates: a
frontend that sees every request, one prefill server and two decode servers. They are configured
twice:

- once on a single exporter (deployment ``pd-single``), which computes the deployment figures
  itself (``inference_deployment_*``);
- once split over three exporters, simulated nodes (deployment ``pd-fleet``, ``spans_nodes: true``):
  the frontend and the prefill server on the first, one decode server on each of the others.

One real Prometheus scrapes all four exporters every second and evaluates the shipped recording
rules (generated from ``rules/settings.yml`` with a 1 s evaluation interval instead of 30 s). The
rules' figures for ``pd-fleet`` must equal the single exporter's within 1%, and so must the rules'
figures for ``pd-single``. The GPUs are priced without electricity, so every node's cost is exact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rules.settings import load
from tests.conftest import require_tool
from tests.helpers import ExporterProcess, background_loop, run_exporter, wait_for
from tests.prometheus_stack import PrometheusProcess, run_prometheus, scrape_config, write_rule_files
from tests.vllm_sim import Load, SimulatedVllm, serve

pytestmark = [pytest.mark.e2e, pytest.mark.prometheus, pytest.mark.slow]

MODEL = "llama-3.1-8b"
LOADS = {
    "fe": Load(tokens_per_second=600.0, requests_per_second=3.0, running=12),
    "p0": Load(tokens_per_second=3.0, requests_per_second=0.0, running=3),
    "d0": Load(tokens_per_second=400.0, requests_per_second=2.0, running=8),
    "d1": Load(tokens_per_second=200.0, requests_per_second=1.0, running=4),
}
ROLES = {"fe": "frontend", "p0": "prefill", "d0": "decode", "d1": "decode"}
GPUS = {"fe": [], "p0": [0, 1], "d0": [2, 3, 4, 5], "d1": [6, 7]}
NODES = (("fe", "p0"), ("d0",), ("d1",))
PRICE = 3.0
"""Per H100 and hour; no electricity, so the cost does not depend on each fake node's power."""
TOLERANCE = 0.01
FIGURES = {
    "generation_tokens_per_second": "deployment_model:inference_generation_tokens_per_second:sum",
    "prompt_tokens_per_second": "deployment_model:inference_prompt_tokens_per_second:sum",
    "requests_per_second": "deployment_model:inference_requests_per_second:sum",
    "generation_tokens_per_second_per_gpu": "deployment_model:inference_generation_tokens_per_second_per_gpu:ratio",
    "cost_per_request": "deployment_model:inference_cost_per_request:ratio",
    "gpus": "deployment:inference_server_gpus:sum",
    "cost_per_second": "deployment:inference_server_cost_per_second:sum",
}
"""Each figure the exporter serves as ``inference_deployment_<figure>``, and the rule that computes it."""


@dataclass
class Stack:
    prometheus: PrometheusProcess
    single: ExporterProcess


def config_text(names: tuple[str, ...], urls: dict[str, str], deployment: str, spans_nodes: bool) -> str:
    lines = ["poll_interval: 1s", "rate_window: 5s", "pricing:", f"  gpu_hourly_cost: {{default: {PRICE}}}"]
    if spans_nodes:
        lines += ["deployments:", f"  {deployment}: {{spans_nodes: true}}"]
    lines.append("servers:")
    for name in names:
        lines += [
            f"  - name: {name}",
            f"    url: {urls[name]}",
            "    kind: vllm",
            f"    gpus: {GPUS[name]}",
            f"    deployment: {deployment}",
            f"    role: {ROLES[name]}",
            "    timeout: 500ms",
        ]
    return "\n".join(lines) + "\n"


def _exporter(tmp: Path, name: str, text: str) -> contextlib.AbstractContextManager[ExporterProcess]:
    path = tmp / f"{name}.yml"
    path.write_text(text, encoding="utf-8")
    return run_exporter(["--gpu.simulate", "h100x8", "--config.file", str(path)], tmp)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = require_tool("prometheus", "apt-get install prometheus")
    tmp = tmp_path_factory.mktemp("deployments-fleet")
    with contextlib.ExitStack() as exits:
        loop = exits.enter_context(background_loop())
        urls = {name: serve(loop, SimulatedVllm(MODEL, load)).url for name, load in LOADS.items()}
        single = exits.enter_context(_exporter(tmp, "single", config_text(tuple(LOADS), urls, "pd-single", False)))
        nodes = [
            exits.enter_context(_exporter(tmp, f"node-{i}", config_text(names, urls, "pd-fleet", True)))
            for i, names in enumerate(NODES, start=1)
        ]
        targets = [f"127.0.0.1:{e.port}" for e in (single, *nodes)]
        rules = write_rule_files(tmp, dataclasses.replace(load(), evaluation_interval="1s"))
        prometheus = exits.enter_context(run_prometheus(binary, scrape_config("ite", targets, rules), tmp))
        yield Stack(prometheus, single)


def value(prometheus: PrometheusProcess, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if len(result) == 1 else None


PHASE_RULE = "deployment_phase:inference_cost_per_million_tokens:ratio"
ENERGY_RULE = "deployment:inference_energy_joules_per_token:ratio"
PHASES = ("prompt", "generation")


def figures(prometheus: PrometheusProcess, deployment: str) -> dict[str, float | None]:
    """What the rules say of ``deployment``."""
    labels = f'deployment="{deployment}"'
    found = {name: value(prometheus, f"{rule}{{{labels}}}") for name, rule in FIGURES.items()}
    for phase in PHASES:
        found[f"cost_per_million_tokens_{phase}"] = value(prometheus, f'{PHASE_RULE}{{{labels},phase="{phase}"}}')
    return found


def served(prometheus: PrometheusProcess) -> dict[str, float | None]:
    """What the single exporter serves of ``pd-single``."""
    labels = 'deployment="pd-single"'
    found = {name: value(prometheus, f"inference_deployment_{name}{{{labels}}}") for name in FIGURES}
    for phase in PHASES:
        metric = f'inference_deployment_cost_per_million_tokens{{{labels},phase="{phase}"}}'
        found[f"cost_per_million_tokens_{phase}"] = value(prometheus, metric)
    return found


def _close(a: dict[str, float | None], b: dict[str, float | None]) -> bool:
    assert a.keys() == b.keys()
    return all(
        x is not None and y is not None and math.isclose(x, y, rel_tol=TOLERANCE)
        for x, y in ((a[key], b[key]) for key in a)
    )


def test_the_fleet_rules_over_three_nodes_agree_with_one_exporter(stack: Stack) -> None:
    prometheus = stack.prometheus

    def agree() -> tuple[dict[str, float | None], ...] | None:
        fleet, single_rules, single = (
            figures(prometheus, "pd-fleet"),
            figures(prometheus, "pd-single"),
            served(prometheus),
        )
        return (fleet, single_rules, single) if _close(fleet, single) and _close(single_rules, single) else None

    found = wait_for(agree, timeout=180.0, interval=1.0, what="the fleet rules agreeing with the single exporter")
    fleet, _, single = found  # type: ignore[misc]
    assert single["gpus"] == 8.0 and single["requests_per_second"] == pytest.approx(3.0, rel=0.02)
    assert single["generation_tokens_per_second"] == pytest.approx(600.0, rel=0.02)  # the frontend's, counted once
    assert single["cost_per_second"] == pytest.approx(8 * PRICE / 3600, rel=1e-9)
    assert fleet["generation_tokens_per_second_per_gpu"] == pytest.approx(600.0 / 8, rel=0.02)
    # prefill's 2 GPUs price the prompt tokens, decode's 6 the generated ones (nothing is idle here)
    per_gpu = PRICE / 3600
    assert single["cost_per_million_tokens_prompt"] == pytest.approx(2 * per_gpu / 2400.0 * 1e6, rel=0.02)
    assert single["cost_per_million_tokens_generation"] == pytest.approx(6 * per_gpu / 600.0 * 1e6, rel=0.02)
    energy = value(prometheus, 'inference_deployment_energy_joules_per_token{deployment="pd-single"}')
    assert energy is not None
    assert value(prometheus, f'{ENERGY_RULE}{{deployment="pd-single"}}') == pytest.approx(energy, rel=TOLERANCE)
