"""Hostile bodies against every adapter: each is a clear `ParseError` or a documented, bounded result.

Documented results: a counter that is negative or not finite is left out (never summed into a wrong
total); a gauge that is negative or not finite is skipped; a ratio is clamped to 0..1; a histogram
whose counts are not finite, fall, or lack ``+Inf`` is left out. Everything else is a ``ParseError``.
"""

from __future__ import annotations

import math
import time

import pytest

from exporter.model import ServerSample
from exporter.sources.servers import Adapter, ParseError, UnrecognizedBody, detect, get_adapter
from exporter.sources.servers._text import DEFAULT_MAX_SERIES, MAX_LABELS, MAX_LINE_LENGTH, check_series_count

LINES = {
    "vllm": ('vllm:generation_tokens_total{model_name="m"}', "generation_tokens"),
    "vllm/ray": (
        'ray_vllm_generation_tokens_total{ReplicaId="r",WorkerId="w",engine="0",model_name="m"}',
        "generation_tokens",
    ),
    "vllm/ray-older": ('ray_vllm:generation_tokens_total{WorkerId="w",model_name="m"}', "generation_tokens"),
    "nim": ('generation_tokens_total{model_name="m"}', "generation_tokens"),
    "tgi": ("tgi_request_success", "requests_finished"),
    "sglang": ('sglang:generation_tokens_total{model_name="m"}', "generation_tokens"),
    "sglang/ray": ('ray_sglang_generation_tokens_total{WorkerId="w",model_name="m"}', "generation_tokens"),
    "triton": ('nv_inference_request_success{model="m",version="1"}', "requests_finished"),
    "lmdeploy": ('lmdeploy:generation_tokens_total{model_name="m"}', "generation_tokens"),
    "llamacpp": ("llamacpp:tokens_predicted_total", "generation_tokens"),
    "trtllm": ('trtllm_generation_tokens_total{engine_type="trtllm",model_name="m"}', "generation_tokens"),
    "trtllm/colon": ('trtllm:request_success_total{engine_type="trtllm",model_name="m"}', "requests_finished"),
    "trtllm/unprefixed": ('request_success_total{engine_type="undefined",model_name="m"}', "requests_finished"),
    "dynamo": ('dynamo_frontend_output_tokens_total{model="m"}', "generation_tokens"),
    "aphrodite": ('aphrodite:generation_tokens_total{engine="0",model_name="m"}', "generation_tokens"),
}
"""One counter sample (without its value) that each adapter reads, and the field it feeds.

Keyed by kind, or ``kind/spelling`` where an adapter reads the same families under several names.
"""
KINDS = sorted(LINES)
COUNTS = ("prompt_tokens", "generation_tokens", "requests_finished", "requests_running", "requests_waiting")


def adapter(kind: str) -> Adapter:
    """The adapter of a ``LINES`` key (``kind`` or ``kind/spelling``)."""
    return get_adapter(kind.partition("/")[0])


def with_labels(series: str, extra: str) -> str:
    """Add labels to a series written as ``name`` or ``name{...}``."""
    if series.endswith("}"):
        return series[:-1] + "," + extra + "}"
    return series + "{" + extra + "}"


def assert_bounded(sample: ServerSample) -> None:
    """Every value is absent or a finite, non-negative number; ratios lie in 0..1."""
    for values in sample.models.values():
        for field in COUNTS:
            value = getattr(values, field)
            assert value is None or (math.isfinite(value) and value >= 0), (field, value)
        ratio = values.kv_cache_usage_ratio
        assert ratio is None or 0.0 <= ratio <= 1.0


def test_every_registered_adapter_is_covered() -> None:
    from exporter.sources.servers import adapter_kinds

    assert set(adapter_kinds()) == {key.partition("/")[0] for key in LINES}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "garbage",
    ["", "\x00\x01\x02\x7f" * 100, "\ufffd\u202e\u0000" * 50, "<html><body>404</body></html>", "{}\n[]\n", "# only\n"],
)
def test_garbage_is_a_parse_error_that_says_no_metrics_were_found(kind: str, garbage: str) -> None:
    # trtllm-serve's JSON /metrics is a known mistake: its adapter names the path to use instead
    reason = r"no .*metrics found|the body is JSON, .* /prometheus/metrics"
    with pytest.raises(ParseError, match=reason):
        adapter(kind).parse(garbage)


@pytest.mark.parametrize("garbage", ["", "\x00" * 64, "hello\n", "# HELP x y\n"])
def test_kind_auto_names_a_body_nobody_recognizes(garbage: str) -> None:
    with pytest.raises(UnrecognizedBody, match="no adapter recognizes this body"):
        detect(garbage)


@pytest.mark.parametrize("kind", KINDS)
def test_a_line_cut_short_is_a_parse_error_that_quotes_it(kind: str) -> None:
    series, _ = LINES[kind]
    cut = series[: series.index("{") + 4] if "{" in series else series
    with pytest.raises(ParseError, match="malformed or cut-short sample line"):
        adapter(kind).parse(f"{series} 5\n{cut}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf", "-1", "-0.5", "1e309"])
def test_a_counter_that_is_not_finite_or_negative_is_left_out(kind: str, value: str) -> None:
    series, field = LINES[kind]
    sample = adapter(kind).parse(f"{series} {value}\n")
    assert all(getattr(values, field) is None for values in sample.models.values())
    assert_bounded(sample)


@pytest.mark.parametrize("kind", KINDS)
def test_a_value_that_is_not_a_number_is_a_parse_error(kind: str) -> None:
    series, _ = LINES[kind]
    with pytest.raises(ParseError, match="is not a number"):
        adapter(kind).parse(f"{series} 12abc\n")


@pytest.mark.parametrize("kind", KINDS)
def test_a_duplicate_series_is_a_parse_error(kind: str) -> None:
    series, _ = LINES[kind]
    with pytest.raises(ParseError, match="duplicate series"):
        adapter(kind).parse(f"{series} 5\n{series} 6\n")


@pytest.mark.parametrize("kind", KINDS)
def test_more_labels_than_the_cap_on_one_series_is_a_parse_error(kind: str) -> None:
    series, _ = LINES[kind]
    labels = ",".join(f'l{i}="v"' for i in range(MAX_LABELS + 1))
    with pytest.raises(ParseError, match=f"labels on one series, more than the limit of {MAX_LABELS}"):
        adapter(kind).parse(f"{with_labels(series, labels)} 5\n")


@pytest.mark.parametrize("kind", KINDS)
def test_a_line_longer_than_the_cap_is_a_parse_error_and_costs_little(kind: str) -> None:
    series, _ = LINES[kind]
    started = time.monotonic()
    with pytest.raises(ParseError, match=f"more than the limit of {MAX_LINE_LENGTH}"):
        adapter(kind).parse(f"{with_labels(series, 'x=' + chr(34) + 'y' * 5_000_000 + chr(34))} 5\n")
    assert time.monotonic() - started < 10.0


@pytest.mark.parametrize("kind", KINDS)
def test_more_series_than_the_cap_is_refused_before_the_adapter_parses(kind: str) -> None:
    series, _ = LINES[kind]
    body = "other_metric 1\n" * DEFAULT_MAX_SERIES + f"{series} 5\n"
    with pytest.raises(ParseError, match=f"more than {DEFAULT_MAX_SERIES} series"):
        check_series_count(body, DEFAULT_MAX_SERIES)
    check_series_count(body, DEFAULT_MAX_SERIES + 1)
    assert adapter(kind).parse(body).models


@pytest.mark.parametrize("kind", KINDS)
def test_a_very_long_body_of_comments_and_other_families_is_parsed_in_bounded_time(kind: str) -> None:
    series, _ = LINES[kind]
    body = ("# HELP " + "z" * 200 + "\n") * 20_000 + f"{series} 5\n" + "\n" * 100_000
    started = time.monotonic()
    sample = adapter(kind).parse(body)
    assert time.monotonic() - started < 10.0
    assert_bounded(sample)


@pytest.mark.parametrize("kind", KINDS)
def test_windows_line_endings_timestamps_and_exemplars_are_accepted(kind: str) -> None:
    series, field = LINES[kind]
    for line in (f"{series} 5\r\n", f"{series} 5 1712345678000\n", f'{series} 5 # {{trace_id="a"}} 1.0 1712345678\n'):
        sample = adapter(kind).parse(line)
        assert [getattr(v, field) for v in sample.models.values()] == [5.0], line


def test_a_histogram_whose_cumulative_counts_fall_is_left_out() -> None:
    body = (
        'vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 5\n'
        'vllm:e2e_request_latency_seconds_bucket{le="2.0",model_name="m"} 3\n'
        'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 5\n'
        'vllm:e2e_request_latency_seconds_count{model_name="m"} 5\n'
        'vllm:e2e_request_latency_seconds_sum{model_name="m"} 4\n'
        'vllm:generation_tokens_total{model_name="m"} 1\n'
    )
    assert get_adapter("vllm").parse(body).models["m"].histograms == {}


def test_a_histogram_bound_that_is_not_a_number_is_ignored() -> None:
    body = (
        'sglang:e2e_request_latency_seconds_bucket{le="NaN",model_name="m"} 9\n'
        'sglang:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 2\n'
        'sglang:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 3\n'
        'sglang:e2e_request_latency_seconds_count{model_name="m"} 3\n'
        'sglang:e2e_request_latency_seconds_sum{model_name="m"} 2\n'
    )
    histogram = get_adapter("sglang").parse(body).models["m"].histograms["e2e_request_latency"]
    assert histogram.buckets == ((1.0, 2.0), (math.inf, 3.0))


def test_counters_whose_sum_overflows_are_left_out() -> None:
    body = (
        'vllm:generation_tokens_total{engine="0",model_name="m"} 1.7e308\n'
        'vllm:generation_tokens_total{engine="1",model_name="m"} 1.7e308\n'
    )
    assert get_adapter("vllm").parse(body).models["m"].generation_tokens is None


def test_long_model_names_are_kept_up_to_the_line_cap() -> None:
    name = "m" * (MAX_LINE_LENGTH - 40)
    body = f'vllm:generation_tokens_total{{model_name="{name}"}} 1\n'
    assert list(get_adapter("vllm").parse(body).models) == [name]
