"""The live generation counter of servers that count at completion (llama.cpp ``/metrics`` + ``/slots``).

The exporter reads the server's counter and then its slots, in two requests. A request that finishes
between the two is in neither reading, and comes back in the counter at the next poll: the live
total must not count it twice. These tests replay a simulated server, event by event, against
``derive.observe_model`` and compare what it counts with the tokens really generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter import derive
from exporter.derive import ModelWindows, rate
from exporter.model import ModelSample

WINDOW = 1e9


def counted(windows: ModelWindows) -> list[float]:
    return [v for _, v in windows.generation_tokens.points]


def feed(readings: list[tuple[float, float | None]]) -> ModelWindows:
    windows = ModelWindows()
    for t, (completed, in_flight) in enumerate(readings):
        sample = ModelSample(generation_tokens=completed, generation_tokens_in_flight=in_flight)
        windows = derive.observe_model(windows, float(t), sample, WINDOW, None)
    return windows


def test_a_request_that_finishes_between_the_two_reads_is_counted_once() -> None:
    # 100 tokens in flight; the request ends at 120 after /metrics was read but before /slots was.
    windows = feed([(0, 0), (0, 100), (0, 0), (120, 0)])
    assert counted(windows) == [0.0, 100.0, 100.0, 120.0]


def test_a_poll_whose_slots_read_failed_neither_drops_nor_spikes_the_count() -> None:
    windows = feed([(1000, 0), (1000, 300), (1000, None), (1000, 400)])
    assert counted(windows) == [0.0, 300.0, 300.0, 400.0]


def test_the_first_reading_with_slots_counts_from_the_counter_before_it() -> None:
    windows = feed([(500, None), (600, None), (600, 50)])
    assert counted(windows) == [0.0, 100.0, 150.0]


def test_a_restart_while_a_request_is_in_flight_counts_the_new_process_from_zero() -> None:
    windows = feed([(900, 0), (900, 80), (0, 10), (40, 5)])
    assert counted(windows) == [0.0, 80.0, 90.0, 125.0]


def test_the_live_rate_moves_while_the_servers_own_counter_stands_still() -> None:
    windows = feed([(640, 0), (640, 200), (640, 400), (640, 600)])
    assert rate(windows.generation_tokens) == pytest.approx(200.0)


def test_servers_without_tokens_in_flight_count_exactly_as_before() -> None:
    windows = feed([(100, None), (50, None), (70, None)])
    assert counted(windows) == [0.0, 50.0, 70.0]  # the fall is a restart: the new value counts


@dataclass
class SimulatedServer:
    """A server that counts a request's tokens when it ends, and shows unfinished ones in its slots."""

    loses_cancelled: bool
    """True for old llama.cpp releases, whose counter never includes a cancelled request's tokens."""
    completed: int = 0
    generated: int = 0
    in_flight: list[int] = field(default_factory=list)

    def apply(self, action: tuple[str, int]) -> None:
        verb, n = action
        if verb == "start":
            self.in_flight.append(0)
        elif verb == "generate" and self.in_flight:
            self.in_flight[n % len(self.in_flight)] += 1 + n % 7
            self.generated += 1 + n % 7
        elif verb in ("finish", "cancel") and self.in_flight:
            tokens = self.in_flight.pop(n % len(self.in_flight))
            if verb == "finish" or not self.loses_cancelled:
                self.completed += tokens


VERBS = st.sampled_from(["start", "generate", "generate", "finish", "cancel"])
ACTIONS = st.lists(st.tuples(VERBS, st.integers(0, 50)))
POLLS = st.lists(st.tuples(ACTIONS, ACTIONS, st.booleans()), min_size=1, max_size=25)
"""Per poll: what happens before ``/metrics`` is read, what happens between it and ``/slots``, and
whether ``/slots`` failed."""


Poll = tuple[list[tuple[str, int]], list[tuple[str, int]], bool]


def replay(server: SimulatedServer, polls: list[Poll]) -> float:
    """Poll through ``polls``, then drain and poll once more; check the count against the truth throughout.

    Return the final count, which never falls below the server's own counter.
    """
    windows = ModelWindows()
    drain: list[tuple[str, int]] = [("finish", 0)] * 200
    first_reading, total = None, 0.0
    for t, (before, between, slots_failed) in enumerate([*polls, (drain, [], False)]):
        for action in before:
            server.apply(action)
        completed = server.completed
        for action in between:
            server.apply(action)
        in_flight = None if slots_failed else float(sum(server.in_flight))
        first_reading = first_reading if first_reading is not None else completed + (in_flight or 0.0)
        sample = ModelSample(generation_tokens=completed, generation_tokens_in_flight=in_flight)
        windows = derive.observe_model(windows, float(t), sample, WINDOW, None)
        total = first_reading + counted(windows)[-1]  # the window holds the increase since the first reading
        assert total <= server.generated, "counted tokens that were never generated"
    assert total >= server.completed
    return total


@given(POLLS)
def test_the_live_count_never_exceeds_the_truth_and_ends_exactly_on_it(polls: list[Poll]) -> None:
    server = SimulatedServer(loses_cancelled=False)
    assert replay(server, polls) == server.generated


@given(POLLS)
def test_on_servers_that_lose_cancelled_tokens_the_count_stays_between_the_counter_and_the_truth(
    polls: list[Poll],
) -> None:
    replay(SimulatedServer(loses_cancelled=True), polls)
