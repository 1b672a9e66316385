"""The status page's history: bounded ring buffers, one slot per resolution step, forgetting what left."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.serve.status.history import MAX_POINTS, WINDOW_SECONDS, History, Point, SeriesKey, resolution_for

T0 = 1_700_000_000.0
MODEL = ("inference_generation_tokens_per_second", ("llama", "m"))
GPU = ("inference_gpu_power_watts", ("0", "GPU-1"))


def point(key: SeriesKey, value: float | None) -> Point:
    """A model series belongs to its server (the first label); a GPU series to none."""
    return Point(key, None if key[0].startswith("inference_gpu_") else key[1][0], value)


def record(
    history: History, t: float, values: dict[SeriesKey, float | None], servers: Iterable[str] = ("llama",)
) -> None:
    history.record(t, [point(key, value) for key, value in values.items()], servers)


def test_resolution_is_the_window_over_max_points_or_twice_the_poll_interval() -> None:
    assert resolution_for(1.0) == WINDOW_SECONDS / MAX_POINTS == 5.0
    assert resolution_for(5.0) == 10.0
    assert resolution_for(60.0) == 120.0


def test_a_series_never_holds_more_points_than_its_slots_however_often_snapshots_come() -> None:
    history = History(resolution=5.0)
    for i in range(3600 * 4):  # an hour at four snapshots per second
        record(history, T0 + i / 4, {MODEL: float(i)})
    assert history.slots == 180
    assert history.span() == 180
    assert len(history.values(MODEL)) == 180
    assert len(history.times()) == 180


def test_snapshots_in_one_slot_overwrite_it_so_the_newest_point_is_the_latest_value() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0})
    record(history, T0 + 1, {MODEL: 2.0})
    record(history, T0 + 4.9, {MODEL: 3.0})
    assert history.values(MODEL) == [3.0]
    assert history.times() == [T0 + 4.9]
    record(history, T0 + 5, {MODEL: 4.0})
    assert history.values(MODEL) == [3.0, 4.0]


def test_a_value_absent_from_the_newest_snapshot_of_a_slot_is_absent_in_that_slot() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0})
    record(history, T0 + 5, {MODEL: 2.0})
    record(history, T0 + 6, {MODEL: None})
    assert history.values(MODEL) == [1.0, None]


def test_slots_without_a_snapshot_stay_gaps() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0})
    record(history, T0 + 20, {MODEL: 5.0})
    assert history.values(MODEL) == [1.0, None, None, None, 5.0]
    assert history.times() == [T0, None, None, None, T0 + 20]


def test_a_jump_longer_than_the_window_clears_the_history() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0, GPU: 300.0})
    record(history, T0 + 3600, {MODEL: 2.0})
    assert history.values(MODEL)[-1] == 2.0
    assert [v for v in history.values(MODEL) if v is not None] == [2.0]
    assert GPU not in history


def test_a_wall_clock_that_steps_back_overwrites_the_newest_slot() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0})
    record(history, T0 + 10, {MODEL: 2.0})
    record(history, T0 + 2, {MODEL: 3.0})
    assert history.values(MODEL) == [1.0, None, 3.0]


def test_a_series_absent_for_the_whole_window_is_forgotten() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0, GPU: 300.0})
    for i in range(1, 180):
        record(history, T0 + 5 * i, {MODEL: 1.0})
    assert GPU in history
    record(history, T0 + 5 * 180, {MODEL: 1.0})
    assert GPU not in history
    assert MODEL in history


def test_series_of_a_server_removed_from_the_config_are_forgotten_at_once() -> None:
    other = ("inference_generation_tokens_per_second", ("qwen", "q"))
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0, other: 2.0, GPU: 300.0}, servers=("llama", "qwen"))
    record(history, T0 + 1, {MODEL: 1.0, GPU: 300.0}, servers=("llama",))
    assert other not in history
    assert MODEL in history
    assert GPU in history


def test_a_server_that_is_down_keeps_its_series_for_the_window() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: 1.0})
    record(history, T0 + 5, {}, servers=("llama",))
    assert history.values(MODEL) == [1.0, None]


def test_the_number_of_series_is_capped_and_the_overflow_counted() -> None:
    history = History(resolution=5.0, max_series=3)
    keys = [("inference_generation_tokens_per_second", ("llama", f"m{i}")) for i in range(5)]
    record(history, T0, dict.fromkeys(keys, 1.0))
    assert len(history) == 3
    assert history.dropped_series == 2
    assert [k for k in keys if k in history] == keys[:3]


def test_non_finite_values_are_not_charted() -> None:
    history = History(resolution=5.0)
    record(history, T0, {MODEL: float("nan")})
    record(history, T0 + 5, {MODEL: float("inf")})
    assert MODEL not in history


def test_a_window_shorter_than_the_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="resolution"):
        History(resolution=10.0, window=5.0)


@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=40.0), st.one_of(st.none(), st.floats(-1e6, 1e6))),
        max_size=60,
    )
)
def test_each_slot_holds_the_last_value_written_in_it_within_the_window(
    steps: list[tuple[float, float | None]],
) -> None:
    resolution, slots = 5.0, 8
    history = History(resolution=resolution, window=resolution * slots)
    expected: dict[int, float | None] = {}
    t = T0
    first = int((T0 + steps[0][0]) // resolution) if steps else 0
    for delta, value in steps:
        t += delta
        record(history, t, {MODEL: value})
        expected[int(t // resolution)] = value
    if not steps:
        assert history.span() == 0
        return
    newest = int(t // resolution)
    span = history.span()
    assert span == min(slots, newest - first + 1)
    reference = [expected.get(slot) for slot in range(newest - span + 1, newest + 1)]
    assert history.values(MODEL) == reference


def _traced_bytes(series: int, seconds: float, poll: float = 1.0) -> int:
    """Memory held by a history of ``series`` series after ``seconds`` of snapshots every ``poll`` seconds."""
    keys = [("inference_generation_tokens_per_second", (f"server-{i // 8}", f"model-{i:04d}")) for i in range(series)]
    servers = {key[1][0] for key in keys}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        history = History(resolution=resolution_for(poll))
        for step in range(int(seconds / poll)):
            history.record(T0 + step * poll, [Point(key, key[1][0], float(step)) for key in keys], servers)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_memory_per_series_is_bounded_as_stated_and_stops_growing_after_the_window() -> None:
    series = 200
    empty = _traced_bytes(0, 3600)
    quarter = _traced_bytes(series, 900)
    hour = _traced_bytes(series, 3600)
    per_series = (hour - empty) / series
    # history.py states about 1.8 KiB per series whatever the uptime: 1,440 bytes of values plus overhead.
    assert 1440 <= per_series <= 2048, per_series
    assert hour <= quarter * 1.02, (quarter, hour)
