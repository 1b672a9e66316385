"""Compose a ``Snapshot`` from the loops' state: attribution, rates, cost and energy. Pure, no I/O.

``compose`` is a function of its inputs alone (no clock, no log, no network), so every rule about
what a snapshot says is tested without a poll loop:

- a server's GPUs come from its attribution, split into shares (``attribution.resolve.shares``);
- a server with no GPU attributed has no cost and no power: zero would be a lie;
- a GPU that a server claims but whose rate is unknown has no attributed rate (absent); a GPU no
  server claims has 0 generation tokens/s;
- a server that is down carries no rates (its series are dropped by the exposition).

``degraded`` is what is served when composing fails: every source down with the reason, nothing
derived, so a bug never leaves stale values looking fresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exporter import derive
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


@dataclass(frozen=True, slots=True)
class ServerInput:
    """What ``compose`` reads of one server's state."""

    name: str
    status: SourceStatus
    sample: ServerSample | None
    windows: Mapping[str, derive.ModelWindows]
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


NO_ATTRIBUTION = Attribution("none", ())


def compose(inputs: Inputs) -> Snapshot:
    """The snapshot of ``inputs``."""
    gpus = inputs.gpus
    reading = gpus.reading if gpus is not None else None
    attributions = {s.name: inputs.attributions.get(s.name, NO_ATTRIBUTION) for s in inputs.servers}
    server_shares = shares(attributions, reading)
    prices = _Prices(inputs.pricing, _gpu_names(reading), gpus)
    servers = tuple(_server_view(s, server_shares[s.name], attributions[s.name], prices) for s in inputs.servers)
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
    )


@dataclass(frozen=True, slots=True)
class _Prices:
    """What pricing a share needs: the prices, each GPU's product name, and the GPUs' power."""

    pricing: PricingConfig
    names: Mapping[str, str]
    """GPU UUID → NVML product name, for the GPUs read."""
    gpus: GpuState | None


def _server_view(
    server: ServerInput, gpu_shares: tuple[GpuShare, ...], attribution: Attribution, prices: _Prices
) -> ServerView:
    economics = _server_economics(gpu_shares, prices)
    up = server.sample is not None
    return ServerView(
        name=server.name,
        status=server.status,
        sample=server.sample,
        gpus=gpu_shares,
        rates=derive.model_rates(server.windows, economics) if up else {},
        cost_per_second=economics.cost_per_second,
        power_watts=economics.power_watts,
        attribution=attribution.method,
        gpu_memory_used_bytes=attribution.memory_bytes,
        deployment=server.deployment,
        role=server.role,
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
    name = prices.names.get(share.uuid)
    power = prices.gpus.power_watts.get(share.uuid) if prices.gpus is not None and name is not None else None
    return derive.GpuCostInput(share, derive.hourly_cost(name, prices.pricing.gpu_hourly_cost), power)


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
