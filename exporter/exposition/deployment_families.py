"""The deployment families: the join key of every server in a deployment, and each local deployment as a whole.

Rendered from the snapshot like every family (``families.py`` calls in here). A value that is
``None`` is left out. Sample::

    inference_server_deployment_info{server="decode-0",deployment="llama-pd",role="decode"} 1.0
    inference_deployment_gpus{deployment="llama-pd"} 12.0
    inference_deployment_generation_tokens_per_second_per_gpu{deployment="llama-pd",model="llama"} 412.5
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from exporter.exposition import metrics as m
from exporter.exposition.text import Family
from exporter.model import DeploymentRates, Snapshot

_RATE_FIELDS: tuple[tuple[m.Metric, Callable[[DeploymentRates], float | None]], ...] = (
    (m.DEPLOYMENT_GENERATION_TPS, lambda r: r.generation_tokens_per_second),
    (m.DEPLOYMENT_PROMPT_TPS, lambda r: r.prompt_tokens_per_second),
    (m.DEPLOYMENT_REQUESTS_PS, lambda r: r.requests_per_second),
    (m.DEPLOYMENT_GENERATION_TPS_PER_GPU, lambda r: r.generation_tokens_per_second_per_gpu),
    (m.DEPLOYMENT_COST_PER_REQUEST, lambda r: r.cost_per_request),
    (m.DEPLOYMENT_JOULES_PER_TOKEN, lambda r: r.energy_joules_per_token),
)
_PHASE_PRICES: tuple[tuple[str, Callable[[DeploymentRates], float | None]], ...] = (
    ("prompt", lambda r: r.prompt_cost_per_million_tokens),
    ("generation", lambda r: r.generation_cost_per_million_tokens),
)


def deployment_families(snapshot: Snapshot) -> Iterator[Family]:
    """The join key of every server in a deployment, then each local deployment's figures."""
    members = [s for s in snapshot.servers if s.deployment]
    yield m.SERVER_DEPLOYMENT_INFO, [((s.name, s.deployment, s.role), 1.0) for s in members]
    deployments = snapshot.deployments
    yield m.DEPLOYMENT_GPUS, [((d.name,), float(d.gpus)) for d in deployments]
    yield m.DEPLOYMENT_COST, [((d.name,), d.cost_per_second) for d in deployments if d.cost_per_second is not None]
    for metric, get in _RATE_FIELDS:
        yield (
            metric,
            [
                ((d.name, model), value)
                for d in deployments
                for model, rates in d.rates.items()
                if (value := get(rates)) is not None
            ],
        )
    yield (
        m.DEPLOYMENT_COST_PER_MTOK_PHASE,
        [
            ((d.name, model, phase), value)
            for d in deployments
            for model, rates in d.rates.items()
            for phase, price in _PHASE_PRICES
            if (value := price(rates)) is not None
        ],
    )
