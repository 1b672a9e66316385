"""The status page's deployments section: each local deployment as a whole, one card per deployment and model.

Every figure is one series of ``/metrics`` (``inference_deployment_*``): tokens/s over all of the
deployment's GPUs, requests/s and cost per request with each request counted once, the price per
million tokens of each phase, and its GPUs and cost per hour; the subtitle says which servers play
which role (``docs/deployments.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from exporter.exposition import metrics as m
from exporter.model import DeploymentRates, DeploymentView, Snapshot
from exporter.serve.status.cards import Card, make_figures, rounded
from exporter.serve.status.figures import Spec, money, per_hour, unit
from exporter.serve.status.history import History, Point


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    """One deployment and one of its models in one snapshot."""

    deployment: DeploymentView
    model: str
    rates: DeploymentRates


ROW_SPECS: tuple[Spec[DeploymentRow], ...] = (
    Spec(
        m.DEPLOYMENT_GENERATION_TPS_PER_GPU,
        "Per GPU, all of them",
        unit(" tok/s"),
        lambda r: r.rates.generation_tokens_per_second_per_gpu,
    ),
    Spec(m.DEPLOYMENT_GENERATION_TPS, "Generation", unit(" tok/s"), lambda r: r.rates.generation_tokens_per_second),
    Spec(m.DEPLOYMENT_REQUESTS_PS, "Requests", unit(" req/s"), lambda r: r.rates.requests_per_second),
    Spec(m.DEPLOYMENT_COST_PER_REQUEST, "Cost per request", money, lambda r: r.rates.cost_per_request),
    Spec(
        m.DEPLOYMENT_COST_PER_MTOK_PHASE,
        "Prompt, per 1M tokens",
        money,
        lambda r: r.rates.prompt_cost_per_million_tokens,
        (("phase", "prompt"),),
    ),
    Spec(
        m.DEPLOYMENT_COST_PER_MTOK_PHASE,
        "Generated, per 1M tokens",
        money,
        lambda r: r.rates.generation_cost_per_million_tokens,
        (("phase", "generation"),),
    ),
    Spec(
        m.DEPLOYMENT_JOULES_PER_TOKEN, "Energy, all tokens", unit(" J/tok"), lambda r: r.rates.energy_joules_per_token
    ),
)
"""Per deployment and model, in the order shown."""
WHOLE_SPECS: tuple[Spec[DeploymentView], ...] = (
    Spec(m.DEPLOYMENT_GPUS, "GPUs", unit(""), lambda d: float(d.gpus)),
    Spec(m.DEPLOYMENT_COST, "Cost", per_hour, lambda d: d.cost_per_second),
)
"""Per deployment: the same on each of its models' cards."""


def rows(snapshot: Snapshot) -> list[DeploymentRow]:
    """Every local deployment and model of the snapshot, in config order."""
    return [DeploymentRow(d, model, rates) for d in snapshot.deployments for model, rates in d.rates.items()]


def deployment_points(snapshot: Snapshot) -> Iterable[Point]:
    """The values of the deployments section that the history keeps."""
    for deployment in snapshot.deployments:
        for whole in WHOLE_SPECS:
            yield Point((whole.metric.name, (deployment.name,)), None, rounded(whole.get(deployment)))
    for row in rows(snapshot):
        for spec in ROW_SPECS:
            key = (row.deployment.name, row.model, *(v for _, v in spec.labels))
            yield Point((spec.metric.name, key), None, rounded(spec.get(row)))


def deployment_cards(snapshot: Snapshot, history: History) -> Iterable[Card]:
    """One card per local deployment and model: its figures, and who does what in its subtitle."""
    roles = _roles(snapshot)
    for row in rows(snapshot):
        name = row.deployment.name
        figures = make_figures(ROW_SPECS, row, {"deployment": name, "model": row.model}, snapshot.currency, history)
        whole = make_figures(WHOLE_SPECS, row.deployment, {"deployment": name}, snapshot.currency, history)
        yield Card(
            {"deployment": name, "model": row.model},
            f"{name} · {row.model or 'unnamed model'}",
            roles.get(name, ""),
            "",
            (*figures, *whole),
        )


def _roles(snapshot: Snapshot) -> dict[str, str]:
    """Per deployment, its servers by role in words: ``frontend: fe · prefill: p0 · decode: d0, d1``."""
    found: dict[str, dict[str, list[str]]] = {}
    for server in snapshot.servers:
        if server.deployment:
            found.setdefault(server.deployment, {}).setdefault(server.role, []).append(server.name)
    return {
        name: " · ".join(f"{role}: {', '.join(names)}" for role, names in by_role.items())
        for name, by_role in found.items()
    }
