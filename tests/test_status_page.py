"""The status page and /api/v1/status: the same figures as /metrics, history charts, words, no outside assets."""

from __future__ import annotations

import base64
import email.message
import gzip
import hashlib
import json
import re
from typing import Any

import pytest

from exporter.config import Config
from exporter.exposition.cache import Exposition, Variant
from exporter.model import Snapshot
from exporter.serve.status import CONTENT_SECURITY_POLICY, Links, StatusBoard, page
from exporter.serve.status.charts import number, sparkline
from exporter.serve.status.figures import clocks_text, format_number
from exporter.serve.status.page import PALETTE, TEXT_ON
from tests.status_checks import (
    assert_every_series_is_shown,
    assert_figures_match,
    html_figures,
    json_figures,
    snapshot_time,
)
from tests.status_snapshots import T0, down, gpu, server, snapshot

CONFIG = Config(poll_interval=1.0, rate_window=30.0)
LINKS = Links()


def board_with(*snapshots: Snapshot) -> StatusBoard:
    board = StatusBoard(CONFIG, snapshot(T0 - 1))
    for snap in snapshots:
        board.record(snap, CONFIG)
    return board


def status_of(board: StatusBoard) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(board.json())
    return status


def metrics_of(snap: Snapshot) -> str:
    return Exposition(snap).body(Variant(False, False)).decode()


def busy_snapshot(t: float = T0) -> Snapshot:
    return snapshot(
        t,
        servers=(
            server("llama", {"meta/llama": 1200.0, "meta/llama-lora": 300.0}, t=t, waiting=3.0),
            server("qwen", {"qwen": 1500.5}, t=t, gpus=(4, 5, 6, 7)),
            down("broken", t=t),
        ),
        gpus=tuple(gpu(i, 0.25 + i / 20) for i in range(8)),
    )


# -- the figures are /metrics -------------------------------------------------------------------


def test_every_figure_of_the_json_equals_the_series_metrics_serves_for_the_same_snapshot() -> None:
    snap = busy_snapshot()
    status = status_of(board_with(snap))
    text = metrics_of(snap)
    assert status["taken_at_unix"] == snapshot_time(text) == T0
    figures = json_figures(status)
    assert_figures_match(figures, text, currency="EUR")
    assert_every_series_is_shown(figures, text)


def test_the_page_shows_the_same_figures_and_text_as_the_json() -> None:
    board = board_with(busy_snapshot())
    page = board.html(LINKS).decode()
    assert html_figures(page) == json_figures(status_of(board))
    assert f'data-taken-at="{T0!r}"' in page


def test_the_page_is_complete_without_javascript() -> None:
    page = board_with(busy_snapshot()).html(LINKS).decode()
    for text in ("1,200 tok/s", "300 tok/s", "2 of 3 servers up", "6 requests waiting", "Down: connection refused"):
        assert text in page
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
    # 3 model cards of 12 figures, 8 GPUs of 5; cost: the node 2, each server 2 and 2 prices per model.
    # The node: 8 GPUs × 3.00 per hour; servers up 2 × 0.003 per s (10.8 per hour), 0.0006 of it idle (2.16).
    assert page.count("<svg") == 3 * 12 + 8 * 5 + 2 + (2 + 2 * 2) + (2 + 2) + 2
    for text in ("This node costs 24 EUR per hour: 17.3 serving, 4.32 idle, 0 on GPUs no server claims.", "n/a"):
        assert text in page


def test_sources_are_described_in_words() -> None:
    status = status_of(board_with(busy_snapshot()))
    sources = {s["name"]: s for s in status["sources"]}
    assert sources["llama"]["display"] == "Up. The last poll took 4 ms."
    assert sources["broken"]["state"] == "down"
    assert sources["broken"]["display"] == (
        "Down: connection refused. Last success at 2023-11-14 22:12:50 UTC (30 s earlier)."
    )
    assert sources["NVML (GPUs)"]["kind"] == "driver 570.86.15"


def test_a_server_that_goes_down_keeps_its_cards_with_history_and_na_figures() -> None:
    up = snapshot(T0, servers=(server("llama", {"m": 1000.0}),))
    gone = snapshot(T0 + 5, servers=(down("llama", t=T0 + 5, last_success=T0),))
    status = status_of(board_with(up, gone))
    (card,) = status["models"]
    assert card["note"] == "The server is down: no current figures; the charts show the history."
    generation = card["figures"][0]
    assert generation["value"] is None
    assert generation["display"] == "n/a"
    assert generation["history"] == [1000.0, None]
    assert_figures_match(json_figures(status), metrics_of(gone), currency="EUR")


def test_a_server_removed_from_the_configuration_leaves_the_page_and_its_history() -> None:
    both = snapshot(T0, servers=(server("llama", {"m": 1000.0}), server("qwen", {"q": 900.0})))
    one = snapshot(T0 + 5, servers=(server("llama", {"m": 1000.0}),))
    board = board_with(both, one)
    assert [c["labels"]["server"] for c in status_of(board)["models"]] == ["llama"]
    assert all(labels[:1] != ("qwen",) for _, labels in board.history.series_keys())


def test_a_lost_gpu_keeps_a_card_that_says_so() -> None:
    first = snapshot(T0, gpus=(gpu(0), gpu(1)))
    lost_uuid = first.gpus[1].sample.uuid
    second = snapshot(T0 + 5, gpus=(gpu(0),), lost=((1, lost_uuid),))
    status = status_of(board_with(first, second))
    cards = {c["title"]: c for c in status["gpus"]}
    assert cards["GPU 1"]["note"] == "NVML reports this GPU lost: no current figures."
    assert cards["GPU 1"]["figures"][1]["history"] == [first.gpus[1].sample.power_watts, None]
    assert "1 GPU(s) lost" in status["summary"]


def test_throttled_gpus_are_named_on_their_card_and_counted_in_the_summary() -> None:
    snap = snapshot(
        T0, gpus=(gpu(0, clock_events=frozenset({"sw_power_cap", "gpu_idle"})), gpu(1, clock_events=frozenset()))
    )
    status = status_of(board_with(snap))
    cards = status["gpus"]
    assert cards[0]["clocks"] == "Throttled: power cap."
    assert cards[0]["throttled"] is True
    assert cards[0]["clock_events"] == ["gpu_idle", "sw_power_cap"]
    assert cards[1]["clocks"] == "Clocks: not held back."
    assert "1 GPU throttled" in status["summary"]


@pytest.mark.parametrize(
    ("events", "text"),
    [
        (None, ""),
        (frozenset(), "Clocks: not held back."),
        (frozenset({"gpu_idle"}), "Clocks held by: idle."),
        (frozenset({"hw_thermal_slowdown", "sw_power_cap"}), "Throttled: power cap, thermal slowdown (hardware)."),
    ],
)
def test_clock_events_read_in_words(events: frozenset[str] | None, text: str) -> None:
    assert clocks_text(events) == text


def test_the_json_history_is_aligned_with_its_times_and_rounded_to_four_digits() -> None:
    board = board_with(
        snapshot(T0, servers=(server("llama", {"m": 1234.5678}),)),
        snapshot(T0 + 10, servers=(server("llama", {"m": 1000.0}),)),
    )
    status = status_of(board)
    history = status["history"]
    assert history == {
        "window_seconds": 900.0,
        "resolution_seconds": 5.0,
        "slots": 180,
        "times_unix": [T0, None, T0 + 10],
        "dropped_series": 0,
    }
    assert status["models"][0]["figures"][0]["history"] == [1235.0, None, 1000.0]


def test_the_page_and_json_are_rendered_once_per_snapshot() -> None:
    board = board_with(busy_snapshot())
    assert board.html(LINKS) is board.html(LINKS)
    assert board.json() is board.json()
    assert gzip.decompress(board.json(compress=True)) == board.json()
    before = board.json()
    board.record(busy_snapshot(T0 + 1), CONFIG)
    assert board.json() is not before


def test_the_layout_changes_only_when_the_cards_change() -> None:
    one = status_of(board_with(busy_snapshot()))["layout"]
    two = status_of(board_with(busy_snapshot(), busy_snapshot(T0 + 1)))["layout"]
    fewer = status_of(board_with(snapshot(T0, servers=(server("llama", {"m": 1.0}),))))["layout"]
    assert one == two != fewer


# -- presentation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (7.0, "7"),
        (12345.678, "12,346"),
        (123.4, "123"),
        (12.345, "12.3"),
        (1.2345, "1.23"),
        (0.012345, "0.0123"),
        (0.000844, "0.000844"),
        (99.96, "100"),
        (-3.5, "-3.50"),
        (1e-12, "1.00e-12"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_numbers_read_with_three_significant_digits(value: float, text: str) -> None:
    assert format_number(value) == text


def test_a_sparkline_spans_the_window_and_ends_at_the_right_edge() -> None:
    assert sparkline([], 180) == ""
    assert sparkline([None, None], 180) == ""
    assert sparkline([0.0, 10.0], 3) == "M50 26L100 2"
    assert sparkline([5.0], 2) == "M100 2h0"


def test_a_sparkline_breaks_at_gaps_and_shows_lone_points_as_dots() -> None:
    assert sparkline([4.0, None, 2.0, 4.0, None, 0.0], 6) == "M0 2h0M40 14L60 2M100 26h0"


def test_sparkline_coordinates_round_half_up_as_javascript_does() -> None:
    assert number(20.25) == "20.3"
    assert number(20.0) == "20"
    assert number(0.04) == "0"


def _contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("scheme", sorted(PALETTE))
def test_text_and_charts_have_sufficient_contrast_in_both_colour_schemes(scheme: str) -> None:
    colours = PALETTE[scheme]
    for text, backgrounds in TEXT_ON.items():
        for background in backgrounds:
            ratio = _contrast(colours[text], colours[background])
            assert ratio >= 4.5, f"{scheme}: {text} on {background} is {ratio:.2f}:1"
    assert _contrast(colours["chart"], colours["card"]) >= 3.0


def test_the_page_loads_nothing_from_anywhere_else() -> None:
    page = board_with(busy_snapshot()).html(LINKS).decode()
    assert not re.search(r"<(script|img|iframe|object|embed)[^>]*\ssrc=", page)
    assert not re.search(r"<link[^>]*rel=\"?stylesheet", page)
    assert "@import" not in page
    assert "@font-face" not in page
    assert "url(" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page.replace(_docs_links(page), ""))


def _docs_links(page: str) -> str:
    """The documentation links are the only ones that may leave the exporter (from package metadata)."""
    match = re.search(r'<nav aria-label="Links">.*?</nav>', page)
    assert match is not None
    return match.group(0)


def test_the_content_security_policy_admits_exactly_the_inline_style_and_script() -> None:
    page = board_with(busy_snapshot()).html(LINKS).decode()
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert style is not None
    assert script is not None

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"style-src 'sha256-{digest(style.group(1))}'" in CONTENT_SECURITY_POLICY
    assert f"script-src 'sha256-{digest(script.group(1))}'" in CONTENT_SECURITY_POLICY
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_documentation_links_come_from_the_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    message = email.message.Message()
    message["Project-URL"] = "Source, https://example.org/src"
    message["Project-URL"] = "Documentation, https://example.org/docs"
    monkeypatch.setattr("importlib.metadata.metadata", lambda _name: message)
    page.docs_url.cache_clear()
    try:
        html = page.render(board_with(busy_snapshot()).view(), LINKS)
    finally:
        page.docs_url.cache_clear()
    assert '<a href="https://example.org/docs">Documentation</a>' in html
    assert '<a href="https://example.org/docs#dashboards-and-alerts">Dashboards: how to import them</a>' in html


def test_without_a_documentation_url_the_page_names_the_readme_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.metadata.metadata", lambda _name: email.message.Message())
    page.docs_url.cache_clear()
    try:
        html = page.render(board_with(busy_snapshot()).view(), LINKS)
    finally:
        page.docs_url.cache_clear()
    assert "<li>Documentation: README.md of this release</li>" in html
    assert "<li>Dashboards: README.md, “Dashboards and alerts”</li>" in html


def test_the_page_is_laid_out_for_a_phone() -> None:
    page = board_with(busy_snapshot()).html(LINKS).decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<html lang="en">' in page
    assert "minmax(min(100%,21rem),1fr)" in page
