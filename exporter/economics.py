"""Split what the GPUs cost: serving by phase, idle, unattributed; energy per token and FLOP utilization.

Pure functions of their arguments, like ``derive``, whose windows they read. The rules (the metrics
documentation gives each formula with a worked example):

- A server's cost per second ``C`` (``derive.server_cost_per_second``) is split into **idle** (the share
  of the window in which, poll after poll, it ran no request and its token counters did not move) and
  **serving**, the rest: ``idle = C × idle fraction``, ``serving = C − idle``.
- The serving cost is split between the **prompt** and **generation** phases by the GPU time the
  server measured per phase for whole batches (method ``gpu_time``, where every model of the server
  reports it), else by weighting tokens (``token_weight``): a generated token costs as much as
  ``generation`` prompt tokens, a prompt token served from the prefix cache ``cached_prompt`` of one.
- The node's cost is every GPU's cost; the part of it no server that is up claims is **unattributed**.
  Serving + idle + unattributed is the node's cost.

Every value is finite and non-negative by construction; undefined is ``None``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.derive import EMPTY_WINDOW, CounterWindow, ModelWindows, observe, rate
from exporter.model import ModelRates, ServerSample, TokenCounting

GPU_TIME = "gpu_time"
"""The serving cost is split by the GPU time the server measured per phase."""
TOKEN_WEIGHT = "token_weight"
"""The serving cost is split by tokens, weighted by ``pricing.generation_token_weight``."""
METHODS = (GPU_TIME, TOKEN_WEIGHT)
PER_MILLION = 1e6


@dataclass(frozen=True, slots=True)
class TokenWeights:
    """What tokens weigh against one prompt token that is computed (``pricing.*_token_weight``)."""

    generation: float = 4.0
    """One generated token costs as much as this many prompt tokens (greater than 0)."""
    cached_prompt: float = 0.0
    """One prompt token served from the prefix cache costs this share of a computed one (0..1)."""


DEFAULT_WEIGHTS = TokenWeights()


# -- what each model did -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhaseWork:
    """What one model did over the window, per second. ``None``: not reported, or fewer than two points."""

    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    cached_prompt_tokens: float | None = None
    prefill_gpu_seconds: float | None = None
    """GPU seconds per second spent on prefill passes, as the server measured them."""
    decode_gpu_seconds: float | None = None

    @property
    def has_gpu_time(self) -> bool:
        """Whether the server measured both phases' GPU time."""
        return self.prefill_gpu_seconds is not None and self.decode_gpu_seconds is not None


def phase_work(windows: ModelWindows) -> PhaseWork:
    """The rates of one model's windows that the phase split needs."""
    return PhaseWork(
        prompt_tokens=rate(windows.prompt_tokens),
        generation_tokens=rate(windows.generation_tokens),
        cached_prompt_tokens=rate(windows.prompt_cached_tokens),
        prefill_gpu_seconds=rate(windows.prefill_gpu_seconds),
        decode_gpu_seconds=rate(windows.decode_gpu_seconds),
    )


def cached_share(work: PhaseWork) -> float | None:
    """Prompt tokens served from cache over all prompt tokens, 0..1; ``None`` without prompt tokens."""
    if work.cached_prompt_tokens is None or work.prompt_tokens is None or work.prompt_tokens <= 0:
        return None
    return min(max(work.cached_prompt_tokens / work.prompt_tokens, 0.0), 1.0)


def prompt_equivalent(work: PhaseWork, weights: TokenWeights) -> float:
    """Prompt tokens/s counted as computed ones: ``P − (1 − cached_prompt) × K``, with ``K`` at most ``P``."""
    prompt = work.prompt_tokens or 0.0
    share = cached_share(work) or 0.0
    return prompt * (1.0 - (1.0 - weights.cached_prompt) * share)


def weighted_tokens(work: PhaseWork, weights: TokenWeights) -> tuple[float, float]:
    """The prompt and generation phases' work in computed-prompt-token equivalents per second."""
    return prompt_equivalent(work, weights), weights.generation * (work.generation_tokens or 0.0)


def phase_seconds(work: PhaseWork) -> tuple[float, float]:
    """The prompt and generation phases' measured GPU seconds per second."""
    return work.prefill_gpu_seconds or 0.0, work.decode_gpu_seconds or 0.0


# -- splitting the serving cost ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhaseCost:
    """Cost per second of one model's phases."""

    prompt: float
    generation: float


def split_method(works: Mapping[str, PhaseWork]) -> str:
    """``gpu_time`` when every model reports its GPU time per phase, else ``token_weight``."""
    return GPU_TIME if works and all(work.has_gpu_time for work in works.values()) else TOKEN_WEIGHT


def phase_parts(method: str, works: Mapping[str, PhaseWork], weights: TokenWeights) -> dict[str, tuple[float, float]]:
    """Per model, the amounts (GPU seconds or weighted tokens per second) the serving cost is split by."""
    if method == GPU_TIME:
        return {model: phase_seconds(work) for model, work in works.items()}
    return {model: weighted_tokens(work, weights) for model, work in works.items()}


def split_cost(cost: float, parts: Mapping[str, tuple[float, float]]) -> dict[str, PhaseCost] | None:
    """``cost`` split over every model's two phases in proportion to their parts; ``None`` if all are 0.

    Reusable for any cost and any parts: the phases' costs add up to ``cost`` exactly (to rounding).
    """
    total = sum(prompt + generation for prompt, generation in parts.values())
    if total <= 0 or not math.isfinite(total):
        return None
    return {
        model: PhaseCost(cost * prompt / total, cost * generation / total)
        for model, (prompt, generation) in parts.items()
    }


def split_serving_cost(
    serving: float, works: Mapping[str, PhaseWork], weights: TokenWeights
) -> tuple[str, dict[str, PhaseCost] | None]:
    """The method, and each model's phase costs of a server's serving cost (``None`` with nothing to split by)."""
    method = split_method(works)
    return method, split_cost(serving, phase_parts(method, works, weights))


def work_shares(parts: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Each model's share of the server's work (both phases); equal shares when nothing was done."""
    total = sum(prompt + generation for prompt, generation in parts.values())
    if total > 0 and math.isfinite(total):
        return {model: (prompt + generation) / total for model, (prompt, generation) in parts.items()}
    return {model: 1.0 / len(parts) for model in parts} if parts else {}


def ratio(numerator: float | None, denominator: float | None, scale: float = 1.0) -> float | None:
    """``numerator / denominator × scale``, ``None`` when undefined or not finite."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    value = numerator / denominator * scale
    return value if math.isfinite(value) and value >= 0 else None


# -- per model -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerCosts:
    """What one server's economics depend on over the window."""

    serving_cost_per_second: float | None
    """The server's cost less its idle cost; ``None`` without GPUs."""
    power_watts: float | None
    peak_flops: float | None
    """The dense BF16 peak of the server's GPUs (their mean), ``None`` where any is unknown."""
    weights: TokenWeights = DEFAULT_WEIGHTS


def with_economics(
    rates: Mapping[str, ModelRates], windows: Mapping[str, ModelWindows], costs: ServerCosts
) -> tuple[str, dict[str, ModelRates]]:
    """The split method, and each model's rates with its phase prices, cache ratio, energy per token and MFU."""
    works = {model: phase_work(w) for model, w in windows.items()}
    method = split_method(works)
    parts = phase_parts(method, works, costs.weights)
    split = split_cost(costs.serving_cost_per_second, parts) if costs.serving_cost_per_second is not None else None
    shares = work_shares(parts)
    out = {}
    for model, base in rates.items():
        work = works.get(model, PhaseWork())
        phase = split.get(model) if split is not None else None
        power = costs.power_watts * shares.get(model, 0.0) if costs.power_watts is not None else None
        flops = rate(windows[model].flops_per_gpu) if model in windows else None
        out[model] = dataclasses.replace(
            base,
            prompt_cost_per_million_tokens=ratio(phase.prompt if phase else None, work.prompt_tokens, PER_MILLION),
            generation_cost_per_million_tokens=ratio(
                phase.generation if phase else None, work.generation_tokens, PER_MILLION
            ),
            prompt_cache_hit_ratio=cached_share(work),
            energy_joules_per_token=ratio(power, _total_tokens(work)),
            flops_per_second_per_gpu=flops,
            model_flops_utilization_ratio=ratio(flops, costs.peak_flops),
        )
    return method, out


def _total_tokens(work: PhaseWork) -> float | None:
    if work.prompt_tokens is None and work.generation_tokens is None:
        return None
    return (work.prompt_tokens or 0.0) + (work.generation_tokens or 0.0)


# -- idle time -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marks:
    """What one poll of a server says about its activity."""

    running: float | None
    """Requests running, over its models; ``None`` when a model does not report it."""
    counters: tuple[float | None, ...]
    """Every model's prompt and generation counters (generation with its tokens in flight)."""


def marks(sample: ServerSample) -> Marks:
    """The activity marks of one sample."""
    models = [sample.models[name] for name in sorted(sample.models)]
    running = [m.requests_running for m in models]
    counters: list[float | None] = []
    for m in models:
        generated = m.generation_tokens
        if generated is not None and m.generation_tokens_in_flight is not None:
            generated += m.generation_tokens_in_flight
        counters += [m.prompt_tokens, generated]
    return Marks(None if any(r is None for r in running) else sum(r or 0.0 for r in running), tuple(counters))


def can_tell_idle(sample: ServerSample) -> bool:
    """Whether polls can tell idle from busy: requests running are reported, or tokens count every step.

    A server that counts tokens at completion and reports no running requests looks idle during a
    long request: its idle time is unknown.
    """
    if sample.token_counting is TokenCounting.INCREMENTAL:
        return True
    return all(m.requests_running is not None for m in sample.models.values())


def idle_between(before: Marks, after: Marks) -> bool:
    """Whether the time between two polls was idle: nothing ran at the first, and no counter moved by the second.

    A request that arrives before the second poll ends the idle time at that poll, so each change
    between idle and busy is placed to within one poll interval.
    """
    return before.running in (None, 0.0) and before.counters == after.counters


@dataclass(frozen=True, slots=True)
class Activity:
    """A server's idle time: a counter of idle seconds, advanced poll by poll, and its window."""

    window: CounterWindow = EMPTY_WINDOW
    idle_seconds: float = 0.0
    last: Marks | None = None
    last_at: float | None = None
    """Monotonic seconds of the last poll."""
    tells: bool = True
    """Whether the last sample could tell idle from busy (``can_tell_idle``)."""


NO_ACTIVITY = Activity()
"""A server not polled yet."""


def observe_activity(
    activity: Activity, now: float, sample: ServerSample, span: float, restarted: bool | None
) -> Activity:
    """Add one good poll at ``now``: the time since the last one was idle if ``idle_between`` says so.

    Across a restart (known, or a counter that fell) the time is not idle: the counters cannot be
    compared. A gap of failed polls between two good ones is idle only if both ends say so.
    """
    if activity.last_at is not None and now <= activity.last_at:
        return activity
    current = marks(sample)
    idle = activity.last is not None and not restarted and idle_between(activity.last, current)
    seconds = activity.idle_seconds + (now - activity.last_at if idle and activity.last_at is not None else 0.0)
    window = observe(activity.window, now, seconds, span, restarted=False)
    return Activity(window, seconds, current, now, can_tell_idle(sample))


def idle_fraction(activity: Activity) -> float | None:
    """The share of the window the server was idle, 0..1; ``None`` when unknown."""
    if not activity.tells:
        return None
    share = rate(activity.window)
    return None if share is None else min(max(share, 0.0), 1.0)


def idle_cost(cost: float | None, fraction: float | None) -> float | None:
    """The idle part of a server's cost per second."""
    return cost * fraction if cost is not None and fraction is not None else None


def serving_cost(cost: float | None, idle: float | None) -> float | None:
    """A server's cost per second less its idle part (all of it where idle time is unknown)."""
    return None if cost is None else max(cost - (idle or 0.0), 0.0)


# -- the node ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuClaim:
    """One GPU of the node, what it costs per second, and how much of it servers that are up claim."""

    cost_per_second: float
    claimed: float
    """Sum of the up servers' shares of it, 0..1."""


@dataclass(frozen=True, slots=True)
class NodeCost:
    """The node's GPU cost per second and its unattributed part."""

    total: float
    unattributed: float


def node_cost(gpus: Iterable[GpuClaim], unread_claims: Sequence[float] = ()) -> NodeCost:
    """Every GPU's cost, plus servers' claims on GPUs NVML did not read; and the part no server claims.

    ``unread_claims`` are the cost per second of each up server's share of a GPU that is not in the
    reading (priced at the default): they are in the servers' cost, so they are in the node's too.
    """
    total = unattributed = 0.0
    for gpu in gpus:
        total += gpu.cost_per_second
        unattributed += gpu.cost_per_second * max(0.0, 1.0 - gpu.claimed)
    return NodeCost(total + sum(unread_claims), unattributed)


def mean_peak(peaks: Sequence[float | None]) -> float | None:
    """The mean dense peak of a server's GPUs; ``None`` without GPUs or where any peak is unknown."""
    if not peaks or any(p is None or p <= 0 for p in peaks):
        return None
    return sum(p or 0.0 for p in peaks) / len(peaks)
