"""Property-based tests of every adapter's parser: arbitrary text, metric-shaped noise and mutated fixtures.

Whatever the body, ``parse`` either returns a well-formed sample (every value absent or finite and
non-negative, ratios in 0..1, histograms ascending and cumulative) or raises ``ParseError``. No other
exception escapes, and ``detect`` never raises at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.model import ServerSample, TokenCounting
from exporter.sources.servers import ParseError, adapter_kinds, get_adapter
from exporter.sources.servers import detect as detect_any
from tests.conftest import FIXTURES, fixture_text

KINDS = adapter_kinds()
FIXTURE_NAMES = sorted(path.name for path in (FIXTURES / "servers").glob("*.prom"))
COUNTS = ("prompt_tokens", "generation_tokens", "requests_finished", "requests_running", "requests_waiting")
PROPERTY = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])

NAMES = [
    "vllm:generation_tokens_total",
    "vllm:num_requests_running",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:time_to_first_token_seconds_count",
    "vllm:time_to_first_token_seconds_sum",
    "generation_tokens_total",
    "request_finish_total",
    "tgi_request_success",
    "tgi_request_generated_tokens_sum",
    "tgi_request_duration_bucket",
    "tgi_request_duration_count",
    "tgi_request_duration_sum",
    "sglang:generation_tokens_total",
    "sglang:num_running_reqs",
    "sglang:token_usage",
    "nv_inference_request_success",
    "nv_trt_llm_request_metrics",
    "nv_trt_llm_kv_cache_block_metrics",
    "nv_llm_output_token_len_sum",
    "nv_inference_first_response_histogram_ms_bucket",
    "lmdeploy:generation_tokens_total",
    "lmdeploy:gpu_cache_usage_perc",
    "llamacpp:tokens_predicted_total",
    "llamacpp:requests_processing",
    "process_start_time_seconds",
    "unrelated_total",
]
LABELS = ["model_name", "model", "version", "engine", "tp_rank", "dp_rank", "le", "request_type", "kv_cache_block_type"]
LABEL_VALUES = ["m", "n", "0", "1", "+Inf", "0.5", "NaN", "active", "waiting", "fraction", "used", "max", 'q\\"x', "}"]
VALUES = ["0", "1", "7", "2.5", "1e6", "1.23457e+06", "NaN", "+Inf", "-Inf", "-1", "1e308", "abc", "0x10", ""]


def check(sample: ServerSample, kind: str) -> None:
    """The invariants every parsed sample keeps, whatever the body."""
    assert sample.kind == kind
    assert isinstance(sample.token_counting, TokenCounting)
    start = sample.process_start_time_seconds
    assert start is None or math.isfinite(start)
    for model, values in sample.models.items():
        assert isinstance(model, str)
        for field in COUNTS:
            value = getattr(values, field)
            assert value is None or (math.isfinite(value) and value >= 0), (field, value)
        ratio = values.kv_cache_usage_ratio
        assert ratio is None or 0.0 <= ratio <= 1.0
        for histogram in values.histograms.values():
            bounds = [bound for bound, _ in histogram.buckets]
            counts = [count for _, count in histogram.buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf
            assert all(math.isfinite(c) and c >= 0 for c in counts) and counts == sorted(counts)
            assert math.isfinite(histogram.sum) and math.isfinite(histogram.count) and histogram.count >= 0


def parses_or_says_why(kind: str, text: str) -> None:
    """Parse with one adapter: a well-formed sample or a ``ParseError`` with a one-line reason."""
    try:
        sample = get_adapter(kind).parse(text)
    except ParseError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        check(sample, kind)


@st.composite
def sample_lines(draw: Callable[..., object]) -> str:
    """A line that looks like a sample of a family some adapter reads, with hostile parts."""
    name = draw(st.sampled_from(NAMES))
    pairs = draw(st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABEL_VALUES)), max_size=4))
    labels = "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else ""  # type: ignore[attr-defined]
    line = f"{name}{labels} {draw(st.sampled_from(VALUES))}"
    cut = draw(st.integers(min_value=0, max_value=len(line)))
    return line if draw(st.booleans()) else line[:cut]  # type: ignore[return-value]


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(text=st.text(max_size=2000))
def test_arbitrary_text_is_parsed_or_refused_with_a_parse_error(kind: str, text: str) -> None:
    parses_or_says_why(kind, text)


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(lines=st.lists(sample_lines(), max_size=40), newline=st.sampled_from(["\n", "\r\n"]))
def test_metric_shaped_noise_is_parsed_or_refused_with_a_parse_error(kind: str, lines: list[str], newline: str) -> None:
    parses_or_says_why(kind, newline.join(lines) + newline)


@st.composite
def mutated(draw: Callable[..., object], text: str) -> str:
    """The text with a few lines deleted, duplicated, cut, or with characters and values replaced."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(min_value=1, max_value=4))):  # type: ignore[attr-defined]
        index = draw(st.integers(min_value=0, max_value=max(len(lines) - 1, 0)))
        line = lines[index]
        action = draw(st.sampled_from(["delete", "duplicate", "cut", "insert", "value", "truncate_body"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "cut":
            lines[index] = line[: draw(st.integers(min_value=0, max_value=len(line)))]
        elif action == "insert":
            at = draw(st.integers(min_value=0, max_value=len(line)))
            lines[index] = line[:at] + draw(st.text(min_size=1, max_size=5)) + line[at:]
        elif action == "value":
            head, _, _ = line.rpartition(" ")
            lines[index] = f"{head} {draw(st.sampled_from(VALUES))}" if head else line
        else:
            lines = lines[: index + 1]
        if not lines:
            lines = [""]
    return "\n".join(lines)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@PROPERTY
@given(data=st.data())
def test_mutated_fixtures_are_parsed_or_refused_by_every_adapter(name: str, data: st.DataObject) -> None:
    text = data.draw(mutated(fixture_text("servers", name)))
    for kind in KINDS:
        parses_or_says_why(kind, text)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@PROPERTY
@given(
    unrelated=st.lists(
        st.tuples(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12), st.sampled_from(VALUES[:-1])),
        max_size=20,
    )
)
def test_families_no_adapter_reads_never_change_the_result(name: str, unrelated: list[tuple[str, str]]) -> None:
    text = fixture_text("servers", name)
    adapter = detect_any(text)
    noise = "".join(f'# TYPE zz_{n} counter\nzz_{n}{{model_name="m"}} {v}\n' for n, v in dict(unrelated).items())
    assert adapter.parse(noise + text) == adapter.parse(text) == adapter.parse(text + noise)


@PROPERTY
@given(text=st.text(max_size=2000))
def test_detection_never_raises_anything_but_unrecognized_body(text: str) -> None:
    try:
        adapter = detect_any(text)
    except ParseError as exc:
        assert "no adapter recognizes" in str(exc)
    else:
        assert adapter.kind in KINDS


SPLITS = {
    "vllm": ('vllm:generation_tokens_total{{engine="{i}",model_name="m"}}', "generation_tokens"),
    "sglang": ('sglang:num_running_reqs{{dp_rank="{i}",model_name="m",tp_rank="{i}"}}', "requests_running"),
    "lmdeploy": ('lmdeploy:generation_tokens_total{{engine="{i}",model_name="m"}}', "generation_tokens"),
    "triton": ('nv_inference_request_success{{model="m",version="{i}"}}', "requests_finished"),
    "tgi": ('tgi_request_failure{{err="e{i}"}}', "requests_finished"),
}


@pytest.mark.parametrize("kind", sorted(SPLITS))
@PROPERTY
@given(parts=st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=16))
def test_series_of_one_model_over_engines_ranks_or_versions_add_up(kind: str, parts: list[int]) -> None:
    template, field = SPLITS[kind]
    body = "".join(f"{template.format(i=i)} {part}\n" for i, part in enumerate(parts))
    (values,) = get_adapter(kind).parse(body).models.values()
    assert getattr(values, field) == sum(parts)
