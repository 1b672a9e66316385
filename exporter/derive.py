"""Turn successive samples into rates, per-GPU throughput, cost and energy per token.

Everything here is a pure function of its arguments: time comes in as monotonic seconds, never from
a clock. The rules, which the tests check property by property:

- A rate is the increase of a counter between the oldest and the newest point inside the rate
  window, divided by the time between them. With fewer than two points it is undefined.
- A counter that goes down restarted from zero (a server restart, a driver reload): the increase
  across the reset is the new value, never negative, never the old total counted twice.
- A value that is undefined (no requests in the window, no GPUs, no power reading) is ``None`` and
  the exposition leaves it out; it is never 0, NaN or Inf.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.model import GpuShare, ModelRates, ModelSample

SECONDS_PER_HOUR = 3600.0
JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True, slots=True)
class CounterWindow:
    """The recent points of one counter, corrected for resets.

    ``points`` pairs monotonic seconds with the counter's cumulative increase since it was first seen,
    oldest first, all within the rate window of the newest. ``last_raw`` is the last value the source
    reported, to tell an increase from a reset.
    """

    points: tuple[tuple[float, float], ...] = ()
    last_raw: float | None = None


EMPTY_WINDOW = CounterWindow()


def observe(
    window: CounterWindow,
    now: float,
    raw: float | None,
    span: float,
    *,
    restarted: bool | None = None,
) -> CounterWindow:
    """Add a counter reading taken at ``now`` and drop points older than ``span`` seconds.

    ``restarted`` says whether the source is known to have restarted since the last reading. With
    ``None`` a decrease is taken as a restart; with ``False`` a decrease adds nothing (a gauge-like
    counter that fell back, such as tokens of a cancelled request).
    A missing, negative or non-finite reading, or a reading not newer than the last, changes nothing.
    """
    if raw is None or not math.isfinite(raw) or raw < 0:
        return window
    points = window.points
    if points and now <= points[-1][0]:
        return window
    total = points[-1][1] + _increase(window.last_raw, raw, restarted) if points else 0.0
    return CounterWindow(_prune((*points, (now, total)), now - span), raw)


def _increase(last_raw: float | None, raw: float, restarted: bool | None) -> float:
    if last_raw is None or restarted:
        return raw if restarted else 0.0
    if raw >= last_raw:
        return raw - last_raw
    return raw if restarted is None else 0.0


def _prune(points: tuple[tuple[float, float], ...], cutoff: float) -> tuple[tuple[float, float], ...]:
    first = 0
    while first < len(points) - 1 and points[first][0] < cutoff:
        first += 1
    return points[first:]


def rate(window: CounterWindow) -> float | None:
    """Per-second increase over the window, or ``None`` with fewer than two points."""
    if len(window.points) < 2:
        return None
    (t0, v0), (t1, v1) = window.points[0], window.points[-1]
    return (v1 - v0) / (t1 - t0)


def integrate_power(energy: float | None, last_power: float | None, power: float, dt: float) -> float:
    """Advance an energy counter (joules) by trapezoidal integration of power (watts) over ``dt``."""
    start = energy or 0.0
    if last_power is None or dt <= 0:
        return start
    return start + (last_power + power) / 2.0 * dt


def hourly_cost(gpu_name: str | None, prices: Mapping[str, float]) -> float:
    """Hourly price of a GPU by its NVML product name, else the ``default`` price."""
    if gpu_name is not None and gpu_name in prices:
        return prices[gpu_name]
    return prices.get("default", 0.0)


def memory_shares(claims: Mapping[str, Mapping[str, float | None]]) -> dict[str, dict[str, float]]:
    """Split each GPU between the servers that claim it by the GPU memory their processes use.

    ``claims`` is ``{server: {gpu_key: bytes used on that GPU, or None if unknown}}``. A GPU whose
    claimants all have a known, non-zero total is split in proportion to their memory; otherwise
    equally. Either way the weights on a GPU sum to 1, so the GPU's cost is split, never copied.
    """
    used: dict[str, list[float | None]] = {}
    for gpus in claims.values():
        for gpu, memory in gpus.items():
            used.setdefault(gpu, []).append(memory)
    by_memory = {gpu: all(m is not None for m in ms) and sum(m or 0.0 for m in ms) > 0 for gpu, ms in used.items()}
    return {
        server: {
            gpu: (memory or 0.0) / sum(m or 0.0 for m in used[gpu]) if by_memory[gpu] else 1.0 / len(used[gpu])
            for gpu, memory in gpus.items()
        }
        for server, gpus in claims.items()
    }


@dataclass(frozen=True, slots=True)
class GpuCostInput:
    """What the cost of one server's share of one GPU depends on."""

    share: GpuShare
    hourly_cost: float
    power_watts: float | None
    """The GPU's average power over the rate window, ``None`` if unknown."""


def server_power(inputs: Iterable[GpuCostInput]) -> float | None:
    """The server's share of its GPUs' power, ``None`` if any of them is unknown."""
    total = 0.0
    for item in inputs:
        if item.power_watts is None:
            return None
        total += item.power_watts * item.share.weight
    return total


def gpu_cost_per_second(hourly: float, power_watts: float | None, energy_cost_per_kwh: float | None) -> float:
    """Cost per second of one whole GPU: its hourly price, plus electricity where price and power are known."""
    cost = hourly / SECONDS_PER_HOUR
    if energy_cost_per_kwh is not None and power_watts is not None:
        cost += power_watts * energy_cost_per_kwh / JOULES_PER_KWH
    return cost


def server_cost_per_second(inputs: Sequence[GpuCostInput], energy_cost_per_kwh: float | None) -> float:
    """Cost per second of a server's share of its GPUs: each share of each GPU's cost (``gpu_cost_per_second``).

    The electricity of a GPU whose power is unknown is left out, so the shares of a GPU always add up
    to exactly what the node's cost counts for it.
    """
    return sum(
        item.share.weight * gpu_cost_per_second(item.hourly_cost, item.power_watts, energy_cost_per_kwh)
        for item in inputs
    )


def model_shares(generation_rates: Mapping[str, float | None]) -> dict[str, float]:
    """Split a server between its models by generation tokens/s, equally when nothing was generated."""
    known = {model: r for model, r in generation_rates.items() if r is not None}
    total = sum(known.values())
    if total > 0:
        return {model: known.get(model, 0.0) / total for model in generation_rates}
    return {model: 1.0 / len(generation_rates) for model in generation_rates} if generation_rates else {}


@dataclass(frozen=True, slots=True)
class LiveGeneration:
    """A generation counter that includes tokens still in flight (llama.cpp ``/slots``), made monotonic.

    The live reading is the server's own counter plus the tokens of unfinished requests. The two come
    from two requests, so a request that finishes between them is in neither: the reading dips, and
    comes back once the server's counter includes it. Counting only what rises above the ``peak``
    never counts those tokens twice. A dip that the server's counter does not make up by the next
    reading (a request cancelled on a server that does not count cancelled tokens) lowers the peak, so
    later tokens count again.
    """

    completed: float
    """The server's own counter at the last reading."""
    peak: float
    """The highest live reading since the last restart, less the dips that were never made up."""
    shortfall: float
    """How far the last live reading was below ``peak``."""
    total: float
    """What has been counted: never goes down, moves by the new tokens of each reading."""


def advance_live(
    state: LiveGeneration | None, completed: float, in_flight: float | None, restarted: bool | None
) -> LiveGeneration:
    """Take one reading of the server's counter and its tokens in flight (``None``: not read this time).

    ``restarted`` as in ``observe``; with ``None``, a fall of the server's own counter means a restart,
    and the counting goes on from the new process's live reading. A reading without the tokens in
    flight only counts what the server's counter alone shows above the peak, and forgives nothing.
    """
    live = completed + (in_flight or 0.0)
    if state is None:
        return LiveGeneration(completed, live, 0.0, live)
    fell = restarted if restarted is not None else completed < state.completed
    if fell:
        return LiveGeneration(completed, live, 0.0, state.total + live)
    if in_flight is None:
        gain = max(0.0, completed - state.peak)
        return dataclasses.replace(state, peak=state.peak + gain, total=state.total + gain)
    forgiven = max(0.0, state.shortfall - max(0.0, completed - state.completed))
    peak = state.peak - forgiven
    gain = max(0.0, live - peak)
    peak += gain
    return LiveGeneration(completed, peak, peak - live, state.total + gain)


@dataclass(frozen=True, slots=True)
class ModelWindows:
    """The counter windows kept for one server and model, one per counter of ``ModelSample``."""

    prompt_tokens: CounterWindow = EMPTY_WINDOW
    generation_tokens: CounterWindow = EMPTY_WINDOW
    requests_finished: CounterWindow = EMPTY_WINDOW
    live_generation: LiveGeneration | None = None
    """Set once the server has reported tokens in flight; from then on it drives ``generation_tokens``."""
    prompt_cached_tokens: CounterWindow = EMPTY_WINDOW
    prefill_gpu_seconds: CounterWindow = EMPTY_WINDOW
    decode_gpu_seconds: CounterWindow = EMPTY_WINDOW
    flops_per_gpu: CounterWindow = EMPTY_WINDOW


PLAIN_COUNTERS = (
    "prompt_tokens",
    "requests_finished",
    "prompt_cached_tokens",
    "prefill_gpu_seconds",
    "decode_gpu_seconds",
    "flops_per_gpu",
)
"""The counters whose window is fed the server's own reading (generation tokens may be made live)."""


def observe_model(
    windows: ModelWindows, now: float, sample: ModelSample, span: float, restarted: bool | None
) -> ModelWindows:
    """Add one model sample to its windows.

    Generation tokens still in flight (llama.cpp ``/slots``) count as generated, so a server that counts
    at completion shows its rate live (see ``LiveGeneration``). A reading without them (``/slots``
    failed once) lowers nothing and adds nothing until the live total is passed again.
    """
    generated, gen_restarted, live = _generation_reading(windows, sample, restarted)
    plain = {
        name: observe(getattr(windows, name), now, getattr(sample, name), span, restarted=restarted)
        for name in PLAIN_COUNTERS
    }
    return dataclasses.replace(
        windows,
        generation_tokens=observe(windows.generation_tokens, now, generated, span, restarted=gen_restarted),
        live_generation=live,
        **plain,
    )


def _generation_reading(
    windows: ModelWindows, sample: ModelSample, restarted: bool | None
) -> tuple[float | None, bool | None, LiveGeneration | None]:
    """The value to feed the generation window, its ``restarted`` flag, and the live state to keep."""
    completed, in_flight, live = sample.generation_tokens, sample.generation_tokens_in_flight, windows.live_generation
    if completed is None or (in_flight is None and live is None):
        return completed, restarted, live
    first = live is None
    live = advance_live(live, completed, in_flight, restarted)
    return live.total, restarted if first else False, live


@dataclass(frozen=True, slots=True)
class ServerEconomics:
    """What a server's GPUs cost and draw over the window."""

    gpu_count: int
    cost_per_second: float | None
    """``None`` when the server has no GPUs attributed: a cost of zero would be a lie."""
    power_watts: float | None


def model_rates(windows: Mapping[str, ModelWindows], economics: ServerEconomics) -> dict[str, ModelRates]:
    """Rates, throughput per GPU, cost and energy per token for each model of one server."""
    generation = {model: rate(w.generation_tokens) for model, w in windows.items()}
    shares = model_shares(generation)
    return {model: _one_model_rates(w, generation[model], shares[model], economics) for model, w in windows.items()}


def _one_model_rates(
    windows: ModelWindows, generation: float | None, share: float, economics: ServerEconomics
) -> ModelRates:
    requests = rate(windows.requests_finished)
    cost = economics.cost_per_second * share if economics.cost_per_second is not None else None
    power = economics.power_watts * share if economics.power_watts is not None else None
    return ModelRates(
        prompt_tokens_per_second=rate(windows.prompt_tokens),
        generation_tokens_per_second=generation,
        requests_per_second=requests,
        generation_tokens_per_second_per_gpu=ratio(generation, economics.gpu_count),
        cost_per_request=ratio(cost, requests),
        cost_per_million_generation_tokens=ratio(cost, generation, scale=1e6),
        energy_joules_per_generation_token=ratio(power, generation),
    )


def ratio(numerator: float | None, denominator: float | None, *, scale: float = 1.0) -> float | None:
    """``numerator / denominator × scale``; ``None`` when undefined or not finite (checked after scaling)."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    value = numerator / denominator * scale
    return value if math.isfinite(value) else None


def gpu_generation_rates(
    server_rates: Iterable[tuple[float | None, Sequence[GpuShare]]],
) -> dict[str, float]:
    """Generation tokens/s attributed to each GPU (by uuid): each server's rate split evenly over its GPUs.

    Summed over all GPUs, this equals the sum of the servers' rates (for servers whose GPUs are known).
    """
    per_gpu: dict[str, float] = {}
    for generation, shares in server_rates:
        if generation is None or not shares:
            continue
        for share in shares:
            per_gpu[share.uuid] = per_gpu.get(share.uuid, 0.0) + generation / len(shares)
    return per_gpu
