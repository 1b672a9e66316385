"""Rendering on demand: a snapshot renders up front only what a scrape will read, and renders it the same."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
import platform

import pytest

from exporter.config import Config
from exporter.exposition import metrics as m
from exporter.exposition.cache import GZIP_LEVEL, PLAIN_TEXT, Exposition, Variant
from exporter.exposition.demand import UNKNOWN_INTERVAL_SECONDS, Demand
from exporter.exposition.text import format_value, render
from exporter.model import Histogram, Snapshot
from exporter.poll.poller import Poller
from exporter.serve.service import Service
from tests.helpers import Clock, async_wait_for

PROMETHEUS = Variant(openmetrics=True, gzip=True)


def empty_snapshot() -> Snapshot:
    return Snapshot(taken_at_unix=1_700_000_000.0, servers=(), gpus=(), lost_gpus=(), nvml=None)


def publish_and_scrape(
    demand: Demand[Variant], clock: Clock, *, publish_every: float, scrape_every: float
) -> list[bool]:
    """Publish and scrape on their intervals for a virtual minute; per scrape, whether its bytes were ready."""
    ready: list[bool] = []
    exposition = Exposition(empty_snapshot(), demand)
    next_publish, next_scrape, end = clock.now, clock.now, clock.now + 60.0
    while clock.now < end:
        if clock.now >= next_publish:
            exposition = Exposition(empty_snapshot(), demand)
            next_publish += publish_every
        if clock.now >= next_scrape:
            ready.append(PROMETHEUS in exposition.rendered)
            exposition.body(PROMETHEUS)
            next_scrape += scrape_every
        clock.advance(0.25)
    return ready


def test_without_a_scrape_a_snapshot_renders_nothing_up_front() -> None:
    demand: Demand[Variant] = Demand(Clock())
    assert Exposition(empty_snapshot(), demand).rendered == frozenset()


def test_without_demand_the_plain_text_is_rendered_up_front_as_before() -> None:
    assert Exposition(empty_snapshot()).rendered == {PLAIN_TEXT}


def test_a_steady_slow_scrape_finds_its_bytes_ready_and_unread_snapshots_are_not_rendered() -> None:
    clock = Clock()
    demand: Demand[Variant] = Demand(clock)
    rendered_up_front = 0
    original_due = demand.due

    def counting_due() -> list[Variant]:
        nonlocal rendered_up_front
        due = original_due()
        rendered_up_front += len(due)
        return due

    demand.due = counting_due  # type: ignore[method-assign]
    ready = publish_and_scrape(demand, clock, publish_every=1.0, scrape_every=15.0)
    assert all(ready[2:]), ready  # once the interval is known, every scrape finds its bytes ready
    assert rendered_up_front <= 3 * len(ready) + 15  # about two renders per scrape, not sixty


def test_scrapes_faster_than_snapshots_find_every_snapshot_rendered() -> None:
    clock = Clock()
    ready = publish_and_scrape(Demand(clock), clock, publish_every=5.0, scrape_every=1.0)
    first_scrapes_of_a_snapshot = ready[5::5]
    assert all(first_scrapes_of_a_snapshot), ready


def test_a_late_scrape_keeps_its_form_due_until_it_comes() -> None:
    clock = Clock()
    demand: Demand[Variant] = Demand(clock)
    for _ in range(2):
        demand.note(PROMETHEUS)
        clock.advance(15.0)
    clock.advance(10.0)  # 10 s late
    assert demand.due() == [PROMETHEUS]
    clock.advance(1.0)
    assert demand.due() == [PROMETHEUS]


def test_a_form_nobody_asks_for_any_more_is_forgotten() -> None:
    clock = Clock()
    demand: Demand[Variant] = Demand(clock)
    demand.note(PLAIN_TEXT)  # a one-off curl
    clock.advance(UNKNOWN_INTERVAL_SECONDS + 1)
    assert demand.due() == []
    for _ in range(2):
        demand.note(PROMETHEUS)
        clock.advance(15.0)
    clock.advance(31.0)
    assert demand.due() == []


def test_gzip_bodies_are_the_plain_ones_compressed_at_the_fast_level() -> None:
    exposition = Exposition(empty_snapshot())
    for openmetrics in (False, True):
        zipped = exposition.body(Variant(openmetrics, True))
        assert gzip.decompress(zipped) == exposition.body(Variant(openmetrics, False))
        assert zipped == gzip.compress(exposition.body(Variant(openmetrics, False)), compresslevel=GZIP_LEVEL, mtime=0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.0"),
        (1, "1.0"),
        (-1.5, "-1.5"),
        (1e21, "1e+21"),
        (1e-7, "1e-07"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (True, "1.0"),
    ],
)
def test_values_are_formatted_as_prometheus_expects(value: float, text: str) -> None:
    assert format_value(value) == text


def test_histogram_lines_keep_their_labels_escaped_and_le_last() -> None:
    histogram = Histogram(buckets=((0.1, 1.0), (math.inf, 2.0)), count=2.0, sum=0.25)
    unlabelled = m.Metric("x_seconds", "histogram", "h", (), "s")
    body = render(
        [(m.HISTOGRAMS["time_to_first_token"], [(('a"b\\c\nd', "m"), histogram)]), (unlabelled, [((), histogram)])]
    ).decode()
    assert 'inference_time_to_first_token_seconds_bucket{server="a\\"b\\\\c\\nd",model="m",le="0.1"} 1.0\n' in body
    assert 'inference_time_to_first_token_seconds_bucket{server="a\\"b\\\\c\\nd",model="m",le="+Inf"} 2.0\n' in body
    assert 'inference_time_to_first_token_seconds_count{server="a\\"b\\\\c\\nd",model="m"} 2.0\n' in body
    assert 'x_seconds_bucket{le="0.1"} 1.0\nx_seconds_bucket{le="+Inf"} 2.0\nx_seconds_sum 0.25\n' in body


def test_the_service_serves_what_scrapes_ask_for_from_bytes_rendered_at_publish() -> None:
    clock = Clock()
    service = Service(Config(), gpu_factory=lambda _config: None, clock=clock)
    for _ in range(3):  # a scraper that reads every snapshot
        service.publish(empty_snapshot())
        assert service.exposition.body(PROMETHEUS)
        clock.advance(1.0)
    service.publish(empty_snapshot())
    assert PROMETHEUS in service.exposition.rendered
    assert (
        f'python_version="{platform.python_version()}"' in gzip.decompress(service.exposition.body(PROMETHEUS)).decode()
    )


@pytest.mark.asyncio
async def test_a_poll_that_overruns_its_interval_is_counted_as_missed_and_served() -> None:
    clock = Clock()
    poller = Poller(Config(poll_interval=0.01), session=None, gpu_source=None, clock=clock)  # type: ignore[arg-type]
    polls = 0

    async def slow_poll() -> None:
        nonlocal polls
        polls += 1
        if polls == 1:
            clock.advance(0.025)  # two and a half intervals

    poller.poll_servers = slow_poll  # type: ignore[method-assign]
    task = asyncio.create_task(poller.run())
    try:
        await async_wait_for(lambda: polls >= 3, what="three polls")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert poller.missed_polls == 2
    text = Exposition(poller.snapshot()).body(PLAIN_TEXT).decode()
    assert "\ninference_exporter_missed_polls_total 2.0\n" in text
