"""Derived values: rates over a window, resets, gaps, empty windows, cost and energy.

Property-based tests drive counters through arbitrary increases, restarts, gaps and garbage readings,
in virtual time, and check that no derived value is ever negative, NaN, Inf, or above the true rate.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exporter import derive
from exporter.derive import CounterWindow, GpuCostInput, ModelWindows, ServerEconomics, observe, rate
from exporter.model import GpuShare, ModelRates, ModelSample

WINDOW = 60.0


def feed(points: list[tuple[float, float | None]], span: float = WINDOW, **kw: bool | None) -> CounterWindow:
    window = derive.EMPTY_WINDOW
    for t, value in points:
        window = observe(window, t, value, span, **kw)
    return window


def test_a_steady_counter_gives_its_exact_rate() -> None:
    window = feed([(t, 100.0 + 7.5 * t) for t in range(0, 121, 5)])
    assert rate(window) == pytest.approx(7.5)


def test_the_window_keeps_only_recent_points() -> None:
    window = feed([(float(t), 10.0 * t) for t in range(0, 200, 5)])
    assert window.points[0][0] >= 195 - WINDOW
    assert window.points[-1][0] == 195


def test_a_rate_needs_two_points() -> None:
    assert rate(derive.EMPTY_WINDOW) is None
    assert rate(feed([(0.0, 5.0)])) is None


def test_a_counter_reset_counts_the_new_value_not_a_negative_delta() -> None:
    # 10 tokens/s, restart at t=32 (counter back to 0), 10 tokens/s again.
    readings = [(float(t), 10.0 * t) for t in range(0, 31, 5)] + [(35.0, 30.0), (40.0, 80.0)]
    window = feed(readings)
    assert window.points[-1][1] == 300 + 30 + 50
    assert 0 < (rate(window) or 0) <= 10.0


def test_a_known_restart_counts_from_zero_even_if_the_counter_grew_past_its_old_value() -> None:
    window = feed([(0.0, 0.0), (5.0, 50.0)])
    window = observe(window, 10.0, 60.0, WINDOW, restarted=True)
    assert window.points[-1][1] == 50 + 60


def test_a_fall_that_is_known_not_to_be_a_restart_adds_nothing() -> None:
    window = feed([(0.0, 0.0), (5.0, 50.0)])
    window = observe(window, 10.0, 40.0, WINDOW, restarted=False)
    window = observe(window, 15.0, 45.0, WINDOW, restarted=False)
    assert [v for _, v in window.points] == [0.0, 50.0, 50.0, 55.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0, None])
def test_garbage_readings_are_ignored(bad: float | None) -> None:
    window = feed([(0.0, 0.0), (5.0, 50.0), (10.0, bad), (15.0, 150.0)])
    assert rate(window) == pytest.approx(10.0)


def test_readings_that_do_not_move_forward_in_time_are_ignored() -> None:
    window = feed([(0.0, 0.0), (5.0, 50.0), (5.0, 999.0), (3.0, 999.0), (10.0, 100.0)])
    assert rate(window) == pytest.approx(10.0)


def test_after_a_gap_longer_than_the_window_the_rate_is_undefined_until_two_new_points() -> None:
    window = feed([(0.0, 0.0), (5.0, 50.0), (500.0, 99_999.0)])
    assert rate(window) is None
    window = observe(window, 505.0, 100_049.0, WINDOW)
    assert rate(window) == pytest.approx(10.0)


def test_an_idle_window_has_a_rate_of_zero() -> None:
    assert rate(feed([(float(t), 42.0) for t in range(0, 61, 5)])) == 0.0


# --- properties ---------------------------------------------------------------------------------

step = st.tuples(
    st.floats(min_value=0.001, max_value=120.0),  # time since the previous reading
    st.floats(min_value=0.0, max_value=5000.0),  # true rate during that interval
    st.booleans(),  # did the server restart during it
    st.sampled_from(["ok", "ok", "ok", "nan", "missing", "negative"]),  # what the reading looks like
)


@given(st.lists(step, min_size=1, max_size=60), st.floats(min_value=1.0, max_value=600.0))
def test_rates_are_never_negative_nonfinite_or_above_the_highest_true_rate(
    steps: list[tuple[float, float, bool, str]], span: float
) -> None:
    t, counter, window, highest = 0.0, 0.0, derive.EMPTY_WINDOW, 0.0
    for dt, true_rate, restarts, shape in steps:
        t += dt
        highest = max(highest, true_rate)
        # A restart part-way through the interval: the counter starts from zero and counts what followed.
        counter = true_rate * dt / 2 if restarts else counter + true_rate * dt
        reading = {"ok": counter, "nan": math.nan, "missing": None, "negative": -counter - 1}[shape]
        window = observe(window, t, reading, span)
        value = rate(window)
        if value is not None:
            assert math.isfinite(value)
            assert 0.0 <= value <= highest * (1 + 1e-9) + 1e-9


@given(st.lists(st.tuples(st.floats(0.5, 10.0), st.floats(0.0, 1000.0)), min_size=2, max_size=40))
def test_a_counter_without_resets_gives_the_true_average_over_the_window(steps: list[tuple[float, float]]) -> None:
    t, counter, points = 0.0, 0.0, [(0.0, 0.0)]
    for dt, true_rate in steps:
        t += dt
        counter += true_rate * dt
        points.append((t, counter))
    window = feed(points, span=1e9)
    assert rate(window) == pytest.approx(counter / t, rel=1e-9, abs=1e-9)


rates = st.none() | st.floats(min_value=0.0, max_value=1e6)


@given(
    st.dictionaries(st.text(min_size=1, max_size=5), st.tuples(rates, rates, rates), min_size=1, max_size=5),
    st.integers(min_value=0, max_value=16),
    st.none() | st.floats(min_value=0.0, max_value=10.0),
    st.none() | st.floats(min_value=0.0, max_value=1e4),
)
@example({"0": (None, 2.2250738585072014e-308, None)}, 0, 1.0, None)  # cost per 1M tokens overflowed to inf
def test_derived_model_values_are_absent_or_finite_and_non_negative(
    models: dict[str, tuple[float | None, float | None, float | None]],
    gpus: int,
    cost: float | None,
    power: float | None,
) -> None:
    windows = {name: _windows_with_rates(*values) for name, values in models.items()}
    result = derive.model_rates(windows, ServerEconomics(gpu_count=gpus, cost_per_second=cost, power_watts=power))
    for values in result.values():
        for value in vars_of(values):
            assert value is None or (math.isfinite(value) and value >= 0)


def vars_of(rates_: ModelRates) -> list[float | None]:
    return [getattr(rates_, f) for f in rates_.__dataclass_fields__]


def _windows_with_rates(prompt: float | None, generation: float | None, requests: float | None) -> ModelWindows:
    def window(per_second: float | None) -> CounterWindow:
        return feed([(0.0, 0.0), (10.0, per_second * 10)]) if per_second is not None else derive.EMPTY_WINDOW

    return ModelWindows(window(prompt), window(generation), window(requests))


def test_cost_per_request_and_per_million_tokens_follow_the_formula() -> None:
    windows = {"m": _windows_with_rates(100.0, 400.0, 2.0)}
    cost = 4 * 3.0 / 3600
    (values,) = derive.model_rates(windows, ServerEconomics(4, cost, 2000.0)).values()
    assert values.generation_tokens_per_second_per_gpu == pytest.approx(100.0)
    assert values.cost_per_request == pytest.approx(cost / 2.0)
    assert values.cost_per_million_generation_tokens == pytest.approx(cost / 400.0 * 1e6)
    assert values.energy_joules_per_generation_token == pytest.approx(2000.0 / 400.0)


def test_no_requests_in_the_window_leaves_cost_per_request_out() -> None:
    windows = {"m": _windows_with_rates(0.0, 0.0, 0.0)}
    (values,) = derive.model_rates(windows, ServerEconomics(4, 0.01, 500.0)).values()
    assert values.requests_per_second == 0.0
    assert values.cost_per_request is None
    assert values.cost_per_million_generation_tokens is None
    assert values.energy_joules_per_generation_token is None


def test_a_server_without_gpus_has_no_per_gpu_rate_and_no_cost() -> None:
    windows = {"m": _windows_with_rates(1.0, 10.0, 1.0)}
    (values,) = derive.model_rates(windows, ServerEconomics(0, None, None)).values()
    assert values.generation_tokens_per_second_per_gpu is None
    assert values.cost_per_request is None


def test_several_models_split_the_server_cost_by_generation_rate() -> None:
    windows = {"a": _windows_with_rates(0.0, 300.0, 3.0), "b": _windows_with_rates(0.0, 100.0, 1.0)}
    result = derive.model_rates(windows, ServerEconomics(1, 1.0, None))
    assert result["a"].cost_per_request == pytest.approx(0.75 / 3.0)
    assert result["b"].cost_per_request == pytest.approx(0.25 / 1.0)


def share(uuid: str, weight: float = 1.0) -> GpuShare:
    return GpuShare(index=0, uuid=uuid, weight=weight)


def test_server_cost_adds_electricity_when_priced_and_power_is_known() -> None:
    inputs = [GpuCostInput(share("a"), 3.0, 600.0), GpuCostInput(share("b", 0.5), 2.0, 400.0)]
    expected = (3.0 + 1.0) / 3600 + (600.0 + 200.0) * 0.12 / 3.6e6
    assert derive.server_cost_per_second(inputs, 0.12) == pytest.approx(expected)
    assert derive.server_cost_per_second(inputs, None) == pytest.approx(4.0 / 3600)


def test_unknown_power_leaves_electricity_out_of_the_cost() -> None:
    inputs = [GpuCostInput(share("a"), 3.0, None)]
    assert derive.server_cost_per_second(inputs, 0.12) == pytest.approx(3.0 / 3600)
    assert derive.server_power(inputs) is None


def test_hourly_cost_uses_the_product_name_or_the_default() -> None:
    prices = {"default": 2.5, "NVIDIA H100 80GB HBM3": 3.0}
    assert derive.hourly_cost("NVIDIA H100 80GB HBM3", prices) == 3.0
    assert derive.hourly_cost("NVIDIA A100-SXM4-80GB", prices) == 2.5
    assert derive.hourly_cost(None, prices) == 2.5


@given(st.dictionaries(st.text(max_size=3), st.lists(st.sampled_from("abcdef"), max_size=6), max_size=6))
def test_equal_shares_of_each_gpu_sum_to_one(claims: dict[str, list[str]]) -> None:
    shares = derive.memory_shares({server: dict.fromkeys(gpus) for server, gpus in claims.items()})
    totals: dict[str, float] = {}
    for per_server in shares.values():
        for gpu, weight in per_server.items():
            totals[gpu] = totals.get(gpu, 0.0) + weight
    assert all(total == pytest.approx(1.0) for total in totals.values())


@given(
    st.lists(
        st.tuples(st.none() | st.floats(0, 1e5), st.lists(st.sampled_from("abcdefgh"), max_size=8, unique=True)),
        max_size=6,
    )
)
def test_per_gpu_attributed_rates_sum_to_the_servers_totals(servers: list[tuple[float | None, list[str]]]) -> None:
    inputs = [(generation, [share(u) for u in uuids]) for generation, uuids in servers]
    per_gpu = derive.gpu_generation_rates(inputs)
    expected = sum(g for g, uuids in servers if g is not None and uuids)
    assert sum(per_gpu.values()) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_integrated_power_is_the_trapezoid() -> None:
    assert derive.integrate_power(None, None, 100.0, 1.0) == 0.0
    assert derive.integrate_power(10.0, 100.0, 300.0, 2.0) == pytest.approx(10.0 + 400.0)


def sample(completed: float, in_flight: float | None) -> ModelSample:
    return ModelSample(generation_tokens=completed, generation_tokens_in_flight=in_flight)


def test_tokens_in_flight_make_the_generation_rate_live() -> None:
    windows = ModelWindows()
    for t, done, live in [(0, 0, 0), (1, 0, 100), (2, 0, 200), (3, 300, 0), (4, 300, 100)]:
        windows = derive.observe_model(windows, float(t), sample(done, live), WINDOW, None)
    assert rate(windows.generation_tokens) == pytest.approx(100.0)


def test_a_cancelled_request_in_flight_lowers_nothing_and_spikes_nothing() -> None:
    windows = ModelWindows()
    for t, done, live in [(0, 50, 0), (1, 50, 100), (2, 50, 0), (3, 50, 40)]:
        windows = derive.observe_model(windows, float(t), sample(done, live), WINDOW, None)
    assert [v for _, v in windows.generation_tokens.points] == [0.0, 100.0, 100.0, 140.0]


def test_a_restart_with_tokens_in_flight_counts_from_zero() -> None:
    windows = ModelWindows()
    for t, done, live in [(0, 500, 0), (1, 500, 100), (2, 0, 30)]:
        windows = derive.observe_model(windows, float(t), sample(done, live), WINDOW, None)
    assert [v for _, v in windows.generation_tokens.points] == [0.0, 100.0, 130.0]


@given(st.lists(st.tuples(st.floats(0.0, 1000.0), st.none() | st.floats(0.0, 1000.0), st.booleans()), max_size=40))
def test_the_live_generation_counter_never_goes_down(steps: list[tuple[float, float | None, bool]]) -> None:
    windows, completed = ModelWindows(), 0.0
    for t, (increase, in_flight, restart) in enumerate(steps):
        completed = increase if restart else completed + increase
        windows = derive.observe_model(windows, float(t), sample(completed, in_flight), 1e9, None)
        totals = [v for _, v in windows.generation_tokens.points]
        assert totals == sorted(totals)
