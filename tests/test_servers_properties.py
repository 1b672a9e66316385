"""Property-based tests of every adapter's parser: arbitrary text, metric-shaped noise and mutated fixtures.

Whatever the body, ``parse`` either returns a well-formed sample (every value absent or finite and
non-negative, ratios in 0..1, histograms ascending and cumulative) or raises ``ParseError``. No other
exception escapes, and detection raises nothing but its one-line ``UnrecognizedBody`` or ``RefusedBody``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.model import ServerSample, TokenCounting
from exporter.sources.servers import ParseError, Refusal, RefusedBody, UnrecognizedBody, adapter_kinds, get_adapter
from exporter.sources.servers import detect as detect_any
from exporter.sources.servers._text import Body, mentions
from tests.conftest import FIXTURES, fixture_text

KINDS = adapter_kinds()
SERVERS = FIXTURES / "servers"
FIXTURE_NAMES = sorted(path.name for path in SERVERS.glob("*.prom"))
REFUSED_NAMES = sorted(path.name for path in (SERVERS / "refused").iterdir())
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
    "ray_vllm_generation_tokens_total",
    "ray_vllm:num_requests_running",
    "ray_sglang_prompt_tokens_total",
    "trtllm_generation_tokens_total",
    "trtllm_num_requests_running",
    "trtllm_kv_cache_utilization",
    "trtllm_prompt_cached_tokens_total",
    "trtllm:request_success_total",
    "request_success_total",
    "e2e_request_latency_seconds_bucket",
    "dynamo_frontend_output_tokens_total",
    "dynamo_frontend_requests_total",
    "dynamo_frontend_inflight_requests",
    "dynamo_frontend_model_context_length",
    "dynamo_frontend_input_sequence_tokens_sum",
    "dynamo_component_requests_total",
    "aphrodite:generation_tokens_total",
    "aphrodite:kv_cache_usage_perc",
    "vllm:current_qps",
    "request_received_total",
    "process_start_time_seconds",
    "unrelated_total",
]
LABELS = [
    "model_name",
    "model",
    "version",
    "engine",
    "tp_rank",
    "dp_rank",
    "le",
    "request_type",
    "kv_cache_block_type",
    "pid",
    "WorkerId",
    "engine_type",
    "server",
]
LABEL_VALUES = [
    "m",
    "M",
    "n",
    "0",
    "1",
    "+Inf",
    "0.5",
    "NaN",
    "active",
    "waiting",
    "fraction",
    "used",
    "max",
    "unknown_model",
    'q\\"x',
    "}",
]
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


def recognizes_or_says_why(text: str) -> None:
    """Detection claims the body for a known kind or raises one of its two one-line errors, nothing else."""
    try:
        adapter = detect_any(text)
    except (UnrecognizedBody, RefusedBody) as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert adapter.kind in KINDS


@pytest.mark.parametrize("name", [*FIXTURE_NAMES, *(f"refused/{name}" for name in REFUSED_NAMES)])
@PROPERTY
@given(data=st.data())
def test_mutated_fixtures_are_parsed_or_refused_by_every_adapter(name: str, data: st.DataObject) -> None:
    text = data.draw(mutated(fixture_text("servers", *name.split("/"))))
    recognizes_or_says_why(text)
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
def test_detection_never_raises_anything_but_its_one_line_reasons(text: str) -> None:
    recognizes_or_says_why(text)


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(lines=st.lists(sample_lines(), max_size=40))
def test_every_verdict_on_metric_shaped_noise_is_a_claim_a_pass_or_a_one_line_refusal(
    kind: str, lines: list[str]
) -> None:
    verdict = get_adapter(kind).detect("\n".join(lines) + "\n")
    assert isinstance(verdict, bool) or (isinstance(verdict, Refusal) and "\n" not in verdict.reason)


SPLITS = {
    "vllm": ('vllm:generation_tokens_total{{engine="{i}",model_name="m"}}', "generation_tokens"),
    "vllm/ray": (
        'ray_vllm_generation_tokens_total{{ReplicaId="r{i}",WorkerId="w{i}",model_name="m"}}',
        "generation_tokens",
    ),
    "vllm/ray-older": ('ray_vllm:num_requests_running{{WorkerId="w{i}",model_name="m"}}', "requests_running"),
    "sglang": ('sglang:num_running_reqs{{dp_rank="{i}",model_name="m",tp_rank="{i}"}}', "requests_running"),
    "sglang/ray": ('ray_sglang_prompt_tokens_total{{WorkerId="w{i}",model_name="m"}}', "prompt_tokens"),
    "lmdeploy": ('lmdeploy:generation_tokens_total{{engine="{i}",model_name="m"}}', "generation_tokens"),
    "triton": ('nv_inference_request_success{{model="m",version="{i}"}}', "requests_finished"),
    "tgi": ('tgi_request_failure{{err="e{i}"}}', "requests_finished"),
    "trtllm": ('trtllm_request_success_total{{finished_reason="r{i}",model_name="m"}}', "requests_finished"),
    "dynamo": ('dynamo_frontend_requests_total{{endpoint="e{i}",model="m",status="success"}}', "requests_finished"),
    "aphrodite": ('aphrodite:generation_tokens_total{{engine="{i}",model_name="m"}}', "generation_tokens"),
}
"""Per kind (or ``kind/spelling``): a series of one model split over engines, ranks, versions or Ray workers."""


@pytest.mark.parametrize("kind", sorted(SPLITS))
@PROPERTY
@given(parts=st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=16))
def test_series_of_one_model_over_engines_ranks_or_versions_add_up(kind: str, parts: list[int]) -> None:
    template, field = SPLITS[kind]
    body = "".join(f"{template.format(i=i)} {part}\n" for i, part in enumerate(parts))
    (values,) = get_adapter(kind.partition("/")[0]).parse(body).models.values()
    assert getattr(values, field) == sum(parts)


PER_PROCESS = {
    "vllm": ('vllm:kv_cache_usage_perc{{engine="0",model_name="m",pid="{i}"}}', "kv_cache_usage_ratio"),
    "trtllm": ('trtllm_num_requests_running{{engine_type="trtllm",model_name="m",pid="{i}"}}', "requests_running"),
    "aphrodite": ('aphrodite:kv_cache_usage_perc{{engine="0",model_name="m",pid="{i}"}}', "kv_cache_usage_ratio"),
}
"""A gauge a multiprocess ``prometheus_client`` renders once per process: one value copied, never to be added up."""


@pytest.mark.parametrize("kind", sorted(PER_PROCESS))
@PROPERTY
@given(parts=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8))
def test_a_gauge_rendered_once_per_process_counts_once_as_its_largest_copy(kind: str, parts: list[int]) -> None:
    template, field = PER_PROCESS[kind]
    scale = 1000 if field == "kv_cache_usage_ratio" else 1
    body = "".join(f"{template.format(i=1000 + i)} {part / scale}\n" for i, part in enumerate(parts))
    (values,) = get_adapter(kind).parse(body).models.values()
    assert getattr(values, field) == max(parts) / scale


PREFIXES = [
    "vllm:",
    "ray_vllm_",
    "ray_vllm:",
    "trtllm_",
    "nv_",
    "request_success_total",
    "e2e_request",
    "dynamo_",
    "x",
    "_x",
]


@PROPERTY
@given(
    lines=st.lists(
        st.one_of(sample_lines(), st.text(max_size=30), st.sampled_from(["# TYPE vllm:x gauge", "# HELP nv_"])),
        max_size=30,
    ),
    prefix=st.sampled_from(PREFIXES),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_the_index_of_leading_words_answers_every_mention_as_a_search_does(
    lines: list[str], prefix: str, newline: str
) -> None:
    text = newline.join(lines)
    assert mentions(Body(text), prefix) == mentions(text, prefix)
