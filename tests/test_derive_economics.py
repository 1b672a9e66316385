"""The economics: idle time, the split of the serving cost between phases, cache, energy per token, MFU.

Expected values are worked out by hand from the inputs in the comments. Property-based tests drive
arbitrary windows, polls, restarts and gaps through the same functions and check that every value
is absent or finite and non-negative, that idle time stays within the window, and that a split cost
adds up to what was split.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exporter import derive, economics
from exporter.derive import CounterWindow, ModelWindows, ServerEconomics
from exporter.economics import Activity, ServerCosts, TokenWeights
from exporter.model import ModelRates, ModelSample, ServerSample, TokenCounting


def window(per_second: float | None, span: float = 10.0) -> CounterWindow:
    """A window whose rate is ``per_second`` (two points ``span`` seconds apart), or empty."""
    if per_second is None:
        return derive.EMPTY_WINDOW
    return CounterWindow(((0.0, 0.0), (span, per_second * span)), per_second * span)


def windows(  # noqa: PLR0917 (one rate per counter, in ModelWindows order)
    prompt: float | None = None,
    generation: float | None = None,
    cached: float | None = None,
    prefill: float | None = None,
    decode: float | None = None,
    flops: float | None = None,
) -> ModelWindows:
    return ModelWindows(
        prompt_tokens=window(prompt),
        generation_tokens=window(generation),
        prompt_cached_tokens=window(cached),
        prefill_gpu_seconds=window(prefill),
        decode_gpu_seconds=window(decode),
        flops_per_gpu=window(flops),
    )


def economics_of(
    models: dict[str, ModelWindows],
    serving: float | None,
    power: float | None = None,
    *,
    peak_flops: float | None = None,
    weights: TokenWeights = economics.DEFAULT_WEIGHTS,
) -> tuple[str, dict[str, ModelRates]]:
    base = derive.model_rates(models, ServerEconomics(4, serving, power))
    return economics.with_economics(base, models, ServerCosts(serving, power, peak_flops, weights))


# -- the split between phases ----------------------------------------------------------------------


def test_the_token_weight_split_prices_a_generated_token_as_weight_prompt_tokens() -> None:
    # 0.004 per s; 3000 prompt tokens/s and 500 generated/s with weight 4: 3000 + 2000 = 5000 units/s,
    # so a unit costs 0.004 / 5000 = 8e-7: prompt 0.8 per million, generation 3.2 per million.
    method, rates = economics_of({"m": windows(prompt=3000.0, generation=500.0)}, 0.004)
    assert method == economics.TOKEN_WEIGHT
    assert rates["m"].prompt_cost_per_million_tokens == pytest.approx(0.8)
    assert rates["m"].generation_cost_per_million_tokens == pytest.approx(3.2)
    assert rates["m"].prompt_cost_per_million_tokens * 3000 / 1e6 + 3.2 * 500 / 1e6 == pytest.approx(0.004)


def test_cached_prompt_tokens_cost_their_weight_of_a_computed_one() -> None:
    # 4000 prompt tokens/s, 1000 of them from cache: with weight 0 they count as 3000 computed ones, so
    # units are 3000 + 4 × 500 = 5000 per s at 8e-7 each; 3000 units over 4000 prompt tokens: 0.6 per million.
    _, free = economics_of({"m": windows(prompt=4000.0, generation=500.0, cached=1000.0)}, 0.004)
    assert free["m"].prompt_cost_per_million_tokens == pytest.approx(0.6)
    assert free["m"].generation_cost_per_million_tokens == pytest.approx(3.2)
    assert free["m"].prompt_cache_hit_ratio == pytest.approx(0.25)
    # weight 0.5: 3000 + 500 = 3500 prompt units, 5500 in all at 0.004 / 5500 each.
    _, half = economics_of(
        {"m": windows(prompt=4000.0, generation=500.0, cached=1000.0)}, 0.004, weights=TokenWeights(4.0, 0.5)
    )
    assert half["m"].prompt_cost_per_million_tokens == pytest.approx(0.004 / 5500 * 3500 / 4000 * 1e6)


def test_the_gpu_time_split_follows_the_time_the_server_measured_per_phase() -> None:
    # 0.3 GPU-s/s of prefill, 0.6 of decode: a third of 0.009 per s (0.003) on 4500 prompt tokens/s is
    # 0.667 per million, two thirds (0.006) on 750 generated/s 8 per million; the token weights do not enter.
    work = windows(prompt=4500.0, generation=750.0, cached=2000.0, prefill=0.3, decode=0.6)
    method, rates = economics_of({"m": work}, 0.009, weights=TokenWeights(100.0, 1.0))
    assert method == economics.GPU_TIME
    assert rates["m"].prompt_cost_per_million_tokens == pytest.approx(0.003 / 4500 * 1e6)
    assert rates["m"].generation_cost_per_million_tokens == pytest.approx(8.0)


def test_a_server_splits_by_gpu_time_only_when_every_model_reports_it() -> None:
    models = {"a": windows(prompt=100.0, generation=10.0, prefill=0.1, decode=0.1), "b": windows(100.0, 10.0)}
    method, _ = economics_of(models, 0.001)
    assert method == economics.TOKEN_WEIGHT


def test_several_models_share_the_serving_cost_by_their_weighted_tokens() -> None:
    # a: 1000 + 4 × 250 = 2000 units/s, b: 0 + 4 × 500 = 2000: each carries half of 0.002.
    _, rates = economics_of({"a": windows(1000.0, 250.0), "b": windows(0.0, 500.0)}, 0.002)
    assert rates["a"].generation_cost_per_million_tokens == pytest.approx(0.002 / 4000 * 4 * 1e6)
    assert rates["b"].generation_cost_per_million_tokens == pytest.approx(0.002 / 4000 * 4 * 1e6)
    assert rates["b"].prompt_cost_per_million_tokens is None  # no prompt tokens: undefined, absent


def test_a_window_without_tokens_or_gpu_time_has_no_prices() -> None:
    _, rates = economics_of({"m": windows(0.0, 0.0, prefill=0.0, decode=0.0)}, 0.004, power=800.0)
    values = rates["m"]
    assert values.prompt_cost_per_million_tokens is None
    assert values.generation_cost_per_million_tokens is None
    assert values.energy_joules_per_token is None
    assert values.prompt_cache_hit_ratio is None


def test_energy_per_token_counts_prompt_and_generated_tokens() -> None:
    # 1600 W over 3000 + 1000 tokens/s: 0.4 J per token (1.6 J per generated token).
    _, rates = economics_of({"m": windows(3000.0, 1000.0)}, 0.004, power=1600.0)
    assert rates["m"].energy_joules_per_token == pytest.approx(0.4)
    assert rates["m"].energy_joules_per_generation_token == pytest.approx(1.6)


def test_flops_per_gpu_and_utilization_against_the_peak() -> None:
    # 2.5e14 FLOP/s per GPU against a 989.4e12 peak: 0.25268...
    _, rates = economics_of({"m": windows(100.0, 10.0, flops=2.5e14)}, 0.001, peak_flops=989.4e12)
    assert rates["m"].flops_per_second_per_gpu == pytest.approx(2.5e14)
    assert rates["m"].model_flops_utilization_ratio == pytest.approx(2.5e14 / 989.4e12)
    _, unknown = economics_of({"m": windows(100.0, 10.0, flops=2.5e14)}, 0.001, peak_flops=None)
    assert unknown["m"].flops_per_second_per_gpu == pytest.approx(2.5e14)
    assert unknown["m"].model_flops_utilization_ratio is None


def test_the_mean_peak_needs_every_gpu_known() -> None:
    assert economics.mean_peak([989.4e12, 989.4e12]) == pytest.approx(989.4e12)
    assert economics.mean_peak([989.4e12, None]) is None
    assert economics.mean_peak([]) is None


@given(
    st.floats(min_value=0.0, max_value=1e3),
    st.dictionaries(st.text(max_size=3), st.tuples(st.floats(0.0, 1e6), st.floats(0.0, 1e6)), min_size=1, max_size=4),
)
def test_a_split_cost_adds_up_to_the_cost(cost: float, parts: dict[str, tuple[float, float]]) -> None:
    split = economics.split_cost(cost, parts)
    if split is None:
        assert sum(a + b for a, b in parts.values()) == 0
        return
    total = sum(phase.prompt + phase.generation for phase in split.values())
    assert total == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert all(phase.prompt >= 0 and phase.generation >= 0 for phase in split.values())


rate = st.none() | st.floats(min_value=0.0, max_value=1e7)


@given(
    st.dictionaries(st.text(max_size=3), st.tuples(rate, rate, rate, rate, rate, rate), min_size=1, max_size=4),
    st.none() | st.floats(min_value=0.0, max_value=10.0),
    st.none() | st.floats(min_value=0.0, max_value=1e4),
    st.none() | st.floats(min_value=0.0, max_value=1e16),
    st.floats(min_value=1e-9, max_value=100.0),
    st.floats(min_value=0.0, max_value=1.0),
)
@example({"m": (0.0, 5e-324, None, None, None, None)}, 1.0, None, None, 4.0, 0.0)  # a price overflowing to inf
@example({"m": (1.0, 0.0, 5.0, None, None, None)}, 1.0, None, None, 4.0, 0.0)  # more cached than prompt tokens
def test_every_economic_value_is_absent_or_finite_and_non_negative(  # noqa: PLR0917 (hypothesis)
    models: dict[str, tuple[float | None, ...]],
    serving: float | None,
    power: float | None,
    peak: float | None,
    generation_weight: float,
    cached_weight: float,
) -> None:
    built = {name: windows(*values) for name, values in models.items()}
    _, rates = economics_of(
        built, serving, power, peak_flops=peak, weights=TokenWeights(generation_weight, cached_weight)
    )
    for values in rates.values():
        for name in ModelRates.__dataclass_fields__:
            value = getattr(values, name)
            assert value is None or (math.isfinite(value) and value >= 0), (name, value)
        ratio = values.prompt_cache_hit_ratio
        assert ratio is None or ratio <= 1.0


# -- idle time -------------------------------------------------------------------------------------


def server_sample(
    running: float | None, prompt: float, generated: float, counting: TokenCounting = TokenCounting.INCREMENTAL
) -> ServerSample:
    model = ModelSample(prompt_tokens=prompt, generation_tokens=generated, requests_running=running)
    return ServerSample(kind="vllm", models={"m": model}, token_counting=counting)


def polls(readings: list[tuple[float, ServerSample, bool | None]], span: float = 30.0) -> Activity:
    activity = economics.NO_ACTIVITY
    for now, sample, restarted in readings:
        activity = economics.observe_activity(activity, now, sample, span, restarted)
    return activity


def test_an_interval_is_idle_when_nothing_ran_at_its_start_and_no_counter_moved() -> None:
    # polls every 5 s: busy until 10, idle from 10 to 25 (nothing running at 10, 15, 20; counters flat),
    # a request arrives just before 25 (running at 25, counters still flat): 10-15, 15-20, 20-25 idle.
    readings = [
        (0.0, server_sample(3, 100, 50), None),
        (5.0, server_sample(2, 200, 100), None),
        (10.0, server_sample(0, 300, 150), None),
        (15.0, server_sample(0, 300, 150), None),
        (20.0, server_sample(0, 300, 150), None),
        (25.0, server_sample(1, 300, 150), None),
        (30.0, server_sample(1, 400, 180), None),
    ]
    activity = polls(readings)
    assert activity.idle_seconds == 15.0
    assert economics.idle_fraction(activity) == pytest.approx(15.0 / 30.0)


def test_a_long_request_on_a_server_counting_at_completion_is_busy_time() -> None:
    # one request runs from 0 s to 20 s; its tokens are counted only when it finishes.
    counting = TokenCounting.AT_COMPLETION
    readings = [(t, server_sample(1, 0, 0, counting), None) for t in (0.0, 5.0, 10.0, 15.0)]
    readings += [(20.0, server_sample(0, 512, 256, counting), None), (25.0, server_sample(0, 512, 256, counting), None)]
    activity = polls(readings)
    assert activity.idle_seconds == 5.0  # only 20-25
    assert economics.idle_fraction(activity) == pytest.approx(5.0 / 25.0)


def test_a_restart_is_never_idle_time() -> None:
    readings = [(0.0, server_sample(0, 5, 5), None), (5.0, server_sample(0, 5, 5), True)]
    assert polls(readings).idle_seconds == 0.0
    fell = [(0.0, server_sample(0, 500, 500), None), (5.0, server_sample(0, 0, 0), None)]
    assert polls(fell).idle_seconds == 0.0  # counters that fell cannot be compared


def test_a_gap_between_two_idle_polls_is_idle_and_the_fraction_stays_within_one() -> None:
    readings = [(0.0, server_sample(0, 5, 5), None), (100.0, server_sample(0, 5, 5), None)]
    activity = polls(readings, span=30.0)
    assert activity.idle_seconds == 100.0
    assert economics.idle_fraction(activity) is None  # one point left in the 30 s window
    activity = economics.observe_activity(activity, 105.0, server_sample(0, 5, 5), 30.0, None)
    assert economics.idle_fraction(activity) == 1.0


def test_a_server_counting_at_completion_without_running_requests_cannot_tell_idle() -> None:
    counting = TokenCounting.AT_COMPLETION
    readings = [(t, server_sample(None, 5, 5, counting), None) for t in (0.0, 5.0, 10.0)]
    assert economics.idle_fraction(polls(readings)) is None
    readings = [(t, server_sample(0, 5, 5, counting), None) for t in (0.0, 5.0, 10.0)]
    assert economics.idle_fraction(polls(readings)) == 1.0


def test_tokens_in_flight_count_as_activity() -> None:
    busy = ModelSample(prompt_tokens=5, generation_tokens=5, generation_tokens_in_flight=40, requests_running=None)
    more = ModelSample(prompt_tokens=5, generation_tokens=5, generation_tokens_in_flight=90, requests_running=None)
    samples = [ServerSample("llamacpp", {"": m}, TokenCounting.INCREMENTAL) for m in (busy, more)]
    activity = polls([(0.0, samples[0], None), (5.0, samples[1], None)])
    assert activity.idle_seconds == 0.0


def test_idle_and_serving_cost_split_the_server_cost() -> None:
    assert economics.idle_cost(0.004, 0.25) == pytest.approx(0.001)
    assert economics.serving_cost(0.004, 0.001) == pytest.approx(0.003)
    assert economics.idle_cost(0.004, None) is None
    assert economics.serving_cost(0.004, None) == 0.004  # idle unknown: all of it is serving
    assert economics.serving_cost(None, None) is None


poll_step = st.tuples(
    st.floats(min_value=-1.0, max_value=120.0),  # time since the previous poll (a negative one is ignored)
    st.none() | st.sampled_from([0.0, 0.0, 1.0, 5.0]),  # requests running
    st.sampled_from(["same", "same", "more", "reset"]),  # how the counters moved
    st.none() | st.booleans(),  # restarted
)


@given(st.lists(poll_step, min_size=1, max_size=50), st.floats(min_value=1.0, max_value=600.0))
def test_the_idle_fraction_is_always_within_zero_and_one(
    steps: list[tuple[float, float | None, str, bool | None]], span: float
) -> None:
    t, counter, activity = 0.0, 0.0, economics.NO_ACTIVITY
    first, latest = steps[0][0], steps[0][0]
    for dt, running, move, restarted in steps:
        t += dt
        latest = max(latest, t)
        counter = {"same": counter, "more": counter + 10.0, "reset": 0.0}[move]
        activity = economics.observe_activity(activity, t, server_sample(running, counter, counter), span, restarted)
        fraction = economics.idle_fraction(activity)
        assert fraction is None or 0.0 <= fraction <= 1.0
        assert activity.idle_seconds <= latest - first + 1e-9  # never more idle time than time went by


def test_the_worked_example_of_the_metrics_documentation() -> None:
    # docs/metrics.md, "Worked example": 8 H100 at 3.00 per hour, electricity 0.12 per kWh.
    gpu_400, gpu_500, gpu_70 = (derive.gpu_cost_per_second(3.0, watts, 0.12) for watts in (400.0, 500.0, 70.0))
    assert (gpu_400, gpu_500, gpu_70) == pytest.approx((0.000846667, 0.00085, 0.000835667), rel=1e-6)
    llama_cost, qwen_cost = 4 * gpu_400, 2 * gpu_500
    idle = economics.idle_cost(llama_cost, 0.25)
    assert idle == pytest.approx(0.000846667, rel=1e-6)
    serving = economics.serving_cost(llama_cost, idle)
    assert serving == pytest.approx(0.00254)
    method, llama = economics_of(
        {"m": windows(prompt=3000.0, generation=800.0, cached=1200.0, flops=1.5e14)},
        serving,
        power=1600.0,
        peak_flops=989.4e12,
    )
    assert method == economics.TOKEN_WEIGHT
    assert llama["m"].prompt_cost_per_million_tokens == pytest.approx(0.3048)
    assert llama["m"].generation_cost_per_million_tokens == pytest.approx(2.032)
    assert llama["m"].prompt_cache_hit_ratio == pytest.approx(0.40)
    assert llama["m"].energy_joules_per_token == pytest.approx(0.421, abs=5e-4)
    assert llama["m"].model_flops_utilization_ratio == pytest.approx(0.152, abs=5e-4)
    method, qwen = economics_of({"m": windows(2000.0, 700.0, prefill=0.27, decode=0.63)}, qwen_cost)
    assert method == economics.GPU_TIME
    assert qwen["m"].prompt_cost_per_million_tokens == pytest.approx(0.255)
    assert qwen["m"].generation_cost_per_million_tokens == pytest.approx(1.70)
    claims = [economics.GpuClaim(gpu_400, 1.0)] * 4 + [economics.GpuClaim(gpu_500, 1.0)] * 2
    node = economics.node_cost([*claims, economics.GpuClaim(gpu_70, 0.0), economics.GpuClaim(gpu_70, 0.0)])
    assert node.total == pytest.approx(0.006758)
    assert node.unattributed == pytest.approx(0.00167133, rel=1e-5)
    assert serving + qwen_cost + idle + node.unattributed == pytest.approx(node.total)
