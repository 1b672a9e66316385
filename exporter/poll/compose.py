"""Compose a ``Snapshot`` from the loops' state: attribution, rates, cost and energy. Pure, no I/O.

``compose`` is a function of its inputs alone (no clock, no log, no network), so every rule about
what a snapshot says is tested without a poll loop:

- a server's GPUs come from its attribution, split into shares (``attribution.resolve.shares``);
- a server with no GPU attributed has no cost and no power: zero would be a lie;
- a GPU that a server claims but whose rate is unknown has no attributed rate (absent); a GPU no
  server claims has 0 generation tokens/s;
- a server that is down carries no rates (its series are dropped by the exposition);
- a server's cost is split into idle and serving, and its serving cost between the prompt and
  generation phases (``economics``); the node's cost is every GPU's, and what no server that is up
  claims of it is unattributed, so serving + idle + unattributed is the node's cost.

``degraded`` is what is served when composing fails: every source down with the reason, nothing
derived, so a bug never leaves stale values looking fresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exporter import derive, economics
from exporter.attribution.resolve import Attribution, shares
from exporter.config import PricingConfig
from exporter.config.model import DeploymentConfig
from exporter.model import (
    DeviceOwner,
    GpuReading,
    GpuShare,
    GpuView,
    ServerSample,
    ServerView,
    Snapshot,
    SourceStatus,
)
from exporter.poll.deployments import deployment_views
from exporter.poll.gpus import GpuState
from exporter.sources.gpu.peaks import peak_flops


@dataclass(frozen=True, slots=True)
class ServerInput:
    """What ``compose`` reads of one server's state."""

    name: str
    status: SourceStatus
    sample: ServerSample | None
    windows: Mapping[str, derive.ModelWindows]
    activity: economics.Activity = economics.NO_ACTIVITY
    """The server's idle time over the window."""
    deployment: str = ""
    role: str = "engine"


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything a snapshot is made of, at one moment."""

    taken_at_unix: float
    servers: Sequence[ServerInput]
    attributions: Mapping[str, Attribution]
    """Per server name; a server missing here has no GPUs."""
    pricing: PricingConfig
    gpus: GpuState | None = None
    """``None`` when GPU polling is disabled."""
    ready: bool = False
    gpu_owners: tuple[DeviceOwner, ...] = ()
    kubelet: SourceStatus | None = None
    missed_polls: int = 0
    loop_errors: tuple[tuple[str, int], ...] = ()
    deployments: Mapping[str, DeploymentConfig] = field(default_factory=dict)
    """Settings per deployment name; one that ``spans_nodes`` gets no deployment view here."""
    peak_flops: Mapping[str, float] = field(default_factory=dict)
    """``gpu.peak_flops`` of the configuration."""


NO_ATTRIBUTION = Attribution("none", ())


def compose(inputs: Inputs) -> Snapshot:
    """The snapshot of ``inputs``."""
    gpus = inputs.gpus
    reading = gpus.reading if gpus is not None else None
    attributions = {s.name: inputs.attributions.get(s.name, NO_ATTRIBUTION) for s in inputs.servers}
    server_shares = shares(attributions, reading)
    prices = _Prices(inputs.pricing, _gpu_names(reading), gpus, inputs.peak_flops)
    servers = tuple(_server_view(s, server_shares[s.name], attributions[s.name], prices) for s in inputs.servers)
    node = _node_cost(servers, prices)
    return Snapshot(
        taken_at_unix=inputs.taken_at_unix,
        servers=servers,
        gpus=_gpu_views(gpus, servers, inputs.pricing),
        lost_gpus=reading.lost if reading is not None else (),
        nvml=gpus.status if gpus is not None else None,
        driver_version=reading.driver_version if reading is not None else "",
        currency=inputs.pricing.currency,
        ready=inputs.ready,
        xid_errors=gpus.xid_errors if gpus is not None else (),
        gpu_owners=inputs.gpu_owners,
        kubelet=inputs.kubelet,
        missed_polls=inputs.missed_polls,
        loop_errors=inputs.loop_errors,
        deployments=deployment_views(servers, inputs.deployments),
        node_cost_per_second=node.total if node is not None else None,
        unattributed_cost_per_second=node.unattributed if node is not None else None,
    )


@dataclass(frozen=True, slots=True)
class _Prices:
    """What pricing a share needs: the prices, each GPU's product name and peak, and the GPUs' power."""

    pricing: PricingConfig
    names: Mapping[str, str]
    """GPU UUID → NVML product name, for the GPUs read."""
    gpus: GpuState | None
    peaks: Mapping[str, float]
    """``gpu.peak_flops``: the configuration's peaks by product name, over the built-in table."""

    @property
    def weights(self) -> economics.TokenWeights:
        """The token weights of the token-weight split."""
        return economics.TokenWeights(self.pricing.generation_token_weight, self.pricing.cached_prompt_token_weight)

    def power(self, uuid: str) -> float | None:
        """The GPU's average power over the window, ``None`` unless the GPU was read."""
        return self.gpus.power_watts.get(uuid) if self.gpus is not None and uuid in self.names else None

    def peak(self, share: GpuShare) -> float | None:
        """The dense BF16 peak of the GPU of a share; none for a MIG instance (a slice of the peak)."""
        return None if share.mig_uuid else peak_flops(self.names.get(share.uuid), self.peaks)


def _server_view(
    server: ServerInput, gpu_shares: tuple[GpuShare, ...], attribution: Attribution, prices: _Prices
) -> ServerView:
    costs = _server_economics(gpu_shares, prices)
    idle = economics.idle_cost(costs.cost_per_second, economics.idle_fraction(server.activity))
    method, rates = economics.with_economics(
        derive.model_rates(server.windows, costs) if server.sample is not None else {},
        server.windows,
        economics.ServerCosts(
            serving_cost_per_second=economics.serving_cost(costs.cost_per_second, idle),
            power_watts=costs.power_watts,
            peak_flops=economics.mean_peak([prices.peak(share) for share in gpu_shares]),
            weights=prices.weights,
        ),
    )
    return ServerView(
        name=server.name,
        status=server.status,
        sample=server.sample,
        gpus=gpu_shares,
        rates=rates,
        cost_per_second=costs.cost_per_second,
        power_watts=costs.power_watts,
        attribution=attribution.method,
        gpu_memory_used_bytes=attribution.memory_bytes,
        deployment=server.deployment,
        role=server.role,
        idle_cost_per_second=idle,
        cost_split=method if costs.cost_per_second is not None else None,
    )


def _server_economics(gpu_shares: tuple[GpuShare, ...], prices: _Prices) -> derive.ServerEconomics:
    """What a server's shares of its GPUs cost and draw; no GPUs means no cost and no power."""
    if not gpu_shares:
        return derive.ServerEconomics(gpu_count=0, cost_per_second=None, power_watts=None)
    inputs = [_cost_input(share, prices) for share in gpu_shares]
    return derive.ServerEconomics(
        gpu_count=len(gpu_shares),
        cost_per_second=derive.server_cost_per_second(inputs, prices.pricing.energy_cost_per_kwh),
        power_watts=derive.server_power(inputs),
    )


def _cost_input(share: GpuShare, prices: _Prices) -> derive.GpuCostInput:
    """The share's price by its GPU's product name, and the GPU's power (``None`` unless the GPU was read)."""
    hourly = derive.hourly_cost(prices.names.get(share.uuid), prices.pricing.gpu_hourly_cost)
    return derive.GpuCostInput(share, hourly, prices.power(share.uuid))


def _node_cost(servers: tuple[ServerView, ...], prices: _Prices) -> economics.NodeCost | None:
    """The cost of every GPU read, and the part no server that is up (or worker) claims; ``None`` without a reading."""
    gpus = prices.gpus
    if gpus is None or gpus.reading is None:
        return None
    energy = prices.pricing.energy_cost_per_kwh
    claimed: dict[str, float] = {}
    unread: list[float] = []
    for share in (share for s in servers if s.priced for share in s.gpus):  # workers claim their GPUs too
        claimed[share.uuid] = claimed.get(share.uuid, 0.0) + share.weight
        if share.uuid not in prices.names:
            item = _cost_input(share, prices)
            unread.append(share.weight * derive.gpu_cost_per_second(item.hourly_cost, item.power_watts, energy))
    claims = []
    for gpu in gpus.reading.gpus:
        hourly = derive.hourly_cost(gpu.name, prices.pricing.gpu_hourly_cost)
        cost = derive.gpu_cost_per_second(hourly, prices.power(gpu.uuid), energy)
        claims.append(economics.GpuClaim(cost, claimed.get(gpu.uuid, 0.0)))
    return economics.node_cost(claims, unread)


def _gpu_names(reading: GpuReading | None) -> dict[str, str]:
    return {gpu.uuid: gpu.name for gpu in reading.gpus} if reading is not None else {}


def _gpu_views(gpus: GpuState | None, servers: tuple[ServerView, ...], pricing: PricingConfig) -> tuple[GpuView, ...]:
    if gpus is None or gpus.reading is None:
        return ()
    per_gpu = derive.gpu_generation_rates((_total_generation(s), s.gpus) for s in servers)
    claimed = {share.uuid for s in servers for share in s.gpus}
    return tuple(
        GpuView(
            sample=sample,
            hourly_cost=derive.hourly_cost(sample.name, pricing.gpu_hourly_cost),
            generation_tokens_per_second=per_gpu.get(sample.uuid, None if sample.uuid in claimed else 0.0),
            energy_joules=gpus.energy_joules.get(sample.uuid),
        )
        for sample in gpus.reading.gpus
    )


def _total_generation(server: ServerView) -> float | None:
    rates = [r.generation_tokens_per_second for r in server.rates.values()]
    known = [r for r in rates if r is not None]
    return sum(known) if known else None


def degraded(inputs: Inputs, reason: str) -> Snapshot:
    """What to serve when ``compose`` failed: every source down with ``reason``, nothing derived."""
    error = f"internal error while composing the snapshot ({reason}); see the exporter's log"
    down = [_down(s.status, error) for s in inputs.servers]
    gpus = inputs.gpus
    return Snapshot(
        taken_at_unix=inputs.taken_at_unix,
        servers=tuple(
            ServerView(name=s.name, status=status, sample=None, gpus=(), rates={}, deployment=s.deployment, role=s.role)
            for s, status in zip(inputs.servers, down, strict=True)
        ),
        gpus=(),
        lost_gpus=(),
        nvml=_down(gpus.status, error) if gpus is not None else None,
        currency=inputs.pricing.currency,
        ready=inputs.ready,
        kubelet=_down(inputs.kubelet, error) if inputs.kubelet is not None else None,
        missed_polls=inputs.missed_polls,
        loop_errors=inputs.loop_errors,
    )


def _down(status: SourceStatus, error: str) -> SourceStatus:
    return SourceStatus(False, status.duration_seconds, status.last_success_unix, error)
