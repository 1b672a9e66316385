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
- the price per million tokens of each phase is that phase's serving cost (cost less idle cost) over
  the deployment's tokens of that phase: a prefill server's serving cost is all prompt work, a decode
  server's all generation work, an engine's split as its own prices say; the serving cost of servers
  with no phase of their own (workers, a frontend with GPUs) is spread over the two in proportion;
- energy per token is the power of every server over the deployment's prompt plus generated tokens;
- a deployment whose servers are on several nodes (``spans_nodes``) is left to the fleet rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

from exporter import derive
from exporter.config.model import DeploymentConfig
from exporter.model import DeploymentRates, DeploymentView, ModelRates, ServerView

PER_MILLION = 1e6
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
    cost = _known_sum(s.cost_per_second for s in members if s.priced)
    power = _known_sum(s.power_watts for s in members if s.priced)
    counting = counting_servers(members)
    models = list(dict.fromkeys(model for s in counting for model in s.rates))
    generation = {m: _sum(s.rates.get(m) for s in counting)(_generation) for m in models}
    shares = derive.model_shares(generation)
    rates = {
        m: _rates(m, counting, generation[m], gpus=gpus, cost=cost * shares[m] if cost is not None else None)
        for m in models
    }
    phases = phase_costs(members)
    rates = _with_phase_prices(rates, phases, power)
    return DeploymentView(name, gpus, cost, rates, power_watts=power, phase_costs=phases)


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


def serving_cost(server: ServerView) -> float | None:
    """What a server's GPUs cost while it served: its cost less its idle cost (as served)."""
    if not server.priced or server.cost_per_second is None:
        return None
    return max(server.cost_per_second - (server.idle_cost_per_second or 0.0), 0.0)


def phase_costs(members: Sequence[ServerView]) -> tuple[float, float] | None:
    """The (prompt, generation) serving cost per second of a deployment; ``None`` when no phase is known."""
    prompt = generation = everything = 0.0
    for server in members:
        serving = serving_cost(server)
        if serving is None:
            continue
        everything += serving
        if server.role == "prefill":
            prompt += serving
        elif server.role == "decode":
            generation += serving
        elif server.role == "engine":
            engine_prompt, engine_generation = engine_phase_costs(server)
            prompt, generation = prompt + engine_prompt, generation + engine_generation
    known = prompt + generation
    if known <= 0:
        return None
    scale = everything / known  # workers' and frontends' serving cost, spread over the two phases
    return prompt * scale, generation * scale


def engine_phase_costs(server: ServerView) -> tuple[float, float]:
    """An engine's serving cost per second of each phase, from its own prices and tokens/s."""
    prompt = generation = 0.0
    for rates in server.rates.values():
        if rates.prompt_cost_per_million_tokens is not None and rates.prompt_tokens_per_second is not None:
            prompt += rates.prompt_cost_per_million_tokens * rates.prompt_tokens_per_second / PER_MILLION
        if rates.generation_cost_per_million_tokens is not None and rates.generation_tokens_per_second is not None:
            generation += rates.generation_cost_per_million_tokens * rates.generation_tokens_per_second / PER_MILLION
    return prompt, generation


def _with_phase_prices(
    rates: dict[str, DeploymentRates], phases: tuple[float, float] | None, power: float | None
) -> dict[str, DeploymentRates]:
    """Every model's rates with the deployment's price per million tokens of each phase and energy per token."""
    prompt_tokens = _known_sum(r.prompt_tokens_per_second for r in rates.values())
    generated = _known_sum(r.generation_tokens_per_second for r in rates.values())
    tokens = _known_sum((prompt_tokens, generated))
    prompt_price = derive.ratio(phases[0] if phases else None, prompt_tokens, scale=PER_MILLION)
    generation_price = derive.ratio(phases[1] if phases else None, generated, scale=PER_MILLION)
    energy = derive.ratio(power, tokens)
    return {
        model: dataclasses.replace(
            r,
            prompt_cost_per_million_tokens=prompt_price,
            generation_cost_per_million_tokens=generation_price,
            energy_joules_per_token=energy,
        )
        for model, r in rates.items()
    }


def _known_sum(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


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
