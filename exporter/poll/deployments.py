"""See each deployment as a whole: its servers' figures added up, every request and token counted once.

Pure, like ``compose``, which calls it. The rules (``docs/deployments.md``; the fleet recording rules
in ``rules/deployments.py`` compute the same across nodes):

- requests and tokens come from the deployment's frontends when it has one (they see every request
  once), else from the servers that finish requests: ``decode`` and plain ``engine`` servers. Prefill
  servers and workers never count requests or tokens, or a request would count twice;
- GPUs and cost come from every server of the deployment, prefill and workers included: the
  deployment pays for all of them;
- a figure is the sum of what its servers serve now: a server that is down adds nothing (and its
  cost is not served while it is down, per server or here);
- cost per request splits the deployment's cost between its models by generation tokens/s, as a
  server's cost is split (``derive.model_shares``);
- a deployment whose servers are on several nodes (``spans_nodes``) is left to the fleet rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from exporter import derive
from exporter.config.model import DeploymentConfig
from exporter.model import DeploymentRates, DeploymentView, ModelRates, ServerView

COUNTING_ROLES = ("engine", "decode")
"""Roles that count requests and tokens when the deployment has no frontend."""


def deployment_views(
    servers: Sequence[ServerView], settings: Mapping[str, DeploymentConfig]
) -> tuple[DeploymentView, ...]:
    """A view of every deployment of ``servers`` whose servers are all on this node, in config order."""
    groups: dict[str, list[ServerView]] = {}
    for server in servers:
        if server.deployment:
            groups.setdefault(server.deployment, []).append(server)
    return tuple(
        view(name, members)
        for name, members in groups.items()
        if not settings.get(name, DeploymentConfig()).spans_nodes
    )


def counting_servers(members: Sequence[ServerView]) -> list[ServerView]:
    """The servers whose requests and tokens are the deployment's: its frontends, else its finishers."""
    frontends = [s for s in members if s.role == "frontend"]
    return frontends or [s for s in members if s.role in COUNTING_ROLES]


def view(name: str, members: Sequence[ServerView]) -> DeploymentView:
    """One deployment's figures from its servers."""
    gpus = sum(len(s.gpus) for s in members)
    costs = [s.cost_per_second for s in members if s.priced and s.cost_per_second is not None]
    cost = sum(costs) if costs else None
    counting = counting_servers(members)
    models = list(dict.fromkeys(model for s in counting for model in s.rates))
    generation = {m: _sum(s.rates.get(m) for s in counting)(_generation) for m in models}
    shares = derive.model_shares(generation)
    rates = {
        m: _rates(m, counting, generation[m], gpus=gpus, cost=cost * shares[m] if cost is not None else None)
        for m in models
    }
    return DeploymentView(name=name, gpus=gpus, cost_per_second=cost, rates=rates)


def _rates(
    model: str, counting: Sequence[ServerView], generation: float | None, *, gpus: int, cost: float | None
) -> DeploymentRates:
    """The figures of one model; ``cost`` is the model's share of the deployment's cost per second."""
    total = _sum(s.rates.get(model) for s in counting)
    requests = total(lambda r: r.requests_per_second)
    return DeploymentRates(
        prompt_tokens_per_second=total(lambda r: r.prompt_tokens_per_second),
        generation_tokens_per_second=generation,
        requests_per_second=requests,
        generation_tokens_per_second_per_gpu=derive.ratio(generation, gpus),
        cost_per_request=derive.ratio(cost, requests),
    )


def _generation(rates: ModelRates) -> float | None:
    return rates.generation_tokens_per_second


def _sum(
    rates: Iterable[ModelRates | None],
) -> Callable[[Callable[[ModelRates], float | None]], float | None]:
    """A function that adds up one field over ``rates``: the known values, ``None`` when none is known."""
    present = [r for r in rates if r is not None]

    def total(get: Callable[[ModelRates], float | None]) -> float | None:
        known = [value for r in present if (value := get(r)) is not None]
        return sum(known) if known else None

    return total
