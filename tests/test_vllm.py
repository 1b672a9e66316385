"""The vLLM adapter on the recorded 0.33 body and on literal bodies with older names."""

from __future__ import annotations

import math

import pytest

from exporter.model import TokenCounting
from exporter.sources.servers import ParseError, detect
from exporter.sources.servers.vllm import ADAPTER
from tests.conftest import fixture_text

parse = ADAPTER.parse

MODEL = "Qwen/Qwen3-8B"


def test_the_recorded_body_sums_both_engines_per_model() -> None:
    sample = parse(fixture_text("servers", "vllm-0.33.0-reconstructed.prom"))
    assert sample.kind == "vllm"
    assert sample.token_counting is TokenCounting.INCREMENTAL
    (model,) = sample.models
    values = sample.models[model]
    assert model == MODEL
    assert values.prompt_tokens == 2352 + 812
    assert values.generation_tokens == 1297 + 256
    assert values.requests_finished == 1 + 2 + 1  # stop + length on engine 0, length on engine 1
    assert values.requests_running == 2 + 1
    assert values.requests_waiting == 0
    assert values.kv_cache_usage_ratio == pytest.approx(0.0123)  # the fuller engine


def test_the_recorded_body_yields_all_four_latency_histograms_in_seconds() -> None:
    histograms = parse(fixture_text("servers", "vllm-0.33.0-reconstructed.prom")).models[MODEL].histograms
    assert set(histograms) == {
        "time_to_first_token",
        "inter_token_latency",
        "e2e_request_latency",
        "request_queue_time",
    }
    ttft = histograms["time_to_first_token"]
    assert ttft.count == 4
    assert ttft.sum == pytest.approx(0.51289 + 0.20013, rel=1e-4)  # the two engines' _sum lines
    assert ttft.buckets[-1] == (math.inf, 4.0)
    assert dict(ttft.buckets)[0.25] == 4.0
    assert [b for b, _ in ttft.buckets] == sorted(b for b, _ in ttft.buckets)


def test_the_recorded_body_is_detected_as_vllm() -> None:
    assert detect(fixture_text("servers", "vllm-0.33.0-reconstructed.prom")).kind == "vllm"


OLD_BODY = """\
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.5
vllm:num_requests_running{model_name="m"} 3.0
vllm:num_requests_waiting{model_name="m"} 7.0
vllm:prompt_tokens_total{model_name="m"} 100.0
vllm:generation_tokens_total{model_name="m"} 200.0
vllm:request_success_total{finished_reason="stop",model_name="m"} 4.0
vllm:time_per_output_token_seconds_bucket{le="0.01",model_name="m"} 1.0
vllm:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 9.0
vllm:time_per_output_token_seconds_count{model_name="m"} 9.0
vllm:time_per_output_token_seconds_sum{model_name="m"} 0.9
process_start_time_seconds 1.7e9
"""


def test_older_names_for_the_kv_cache_and_inter_token_latency_are_read() -> None:
    sample = parse(OLD_BODY)
    values = sample.models["m"]
    assert values.kv_cache_usage_ratio == 0.5
    assert values.requests_waiting == 7
    assert values.histograms["inter_token_latency"].count == 9
    assert sample.process_start_time_seconds == 1.7e9


def test_several_models_are_kept_apart() -> None:
    body = 'vllm:generation_tokens_total{model_name="a"} 1\nvllm:generation_tokens_total{model_name="b"} 2\n'
    sample = parse(body)
    assert {m: v.generation_tokens for m, v in sample.models.items()} == {"a": 1.0, "b": 2.0}
    assert sample.models["a"].prompt_tokens is None


def test_a_nonfinite_or_negative_counter_leaves_that_counter_out() -> None:
    body = (
        'vllm:generation_tokens_total{engine="0",model_name="m"} NaN\n'
        'vllm:generation_tokens_total{engine="1",model_name="m"} 5\n'
        'vllm:prompt_tokens_total{model_name="m"} -3\n'
        'vllm:request_success_total{model_name="m"} +Inf\n'
        'vllm:num_requests_running{model_name="m"} 2\n'
    )
    values = parse(body).models["m"]
    assert values.generation_tokens is None
    assert values.prompt_tokens is None
    assert values.requests_finished is None
    assert values.requests_running == 2


def test_a_kv_cache_ratio_out_of_range_is_clamped() -> None:
    assert parse('vllm:kv_cache_usage_perc{model_name="m"} 1.7\n').models["m"].kv_cache_usage_ratio == 1.0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "no vllm metrics found"),
        ("\x00\x01garbage\xff", "no vllm metrics found"),
        (
            'vllm:generation_tokens_total{model_name="m"} 1\nvllm:generation_tokens_total{model_name="m"} 2\n',
            "duplicate series",
        ),
        ('vllm:generation_tokens_total{model_name="m"} twelve\n', "is not a number"),
    ],
)
def test_bad_bodies_raise_parse_error_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(body)


def test_label_values_with_escapes_are_unescaped() -> None:
    body = 'vllm:generation_tokens_total{model_name="a \\"quoted\\" \\\\ name"} 3\n'
    assert list(parse(body).models) == ['a "quoted" \\ name']


def test_timestamps_after_values_are_accepted() -> None:
    assert parse('vllm:generation_tokens_total{model_name="m"} 3 1712345678000\n').models["m"].generation_tokens == 3


def test_prompt_tokens_cached_wins_over_the_prefix_cache_hits_of_older_releases() -> None:
    both = (
        'vllm:prompt_tokens_cached_total{engine="0",model_name="m"} 300\n'
        'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 450\n'
    )
    assert parse(both).models["m"].prompt_cached_tokens == 300
    older = 'vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 120\n'
    assert parse(older).models["m"].prompt_cached_tokens == 120


def test_flops_per_gpu_are_averaged_over_engines_each_counting_its_own_gpus() -> None:
    body = (
        'vllm:estimated_flops_per_gpu_total{engine="0",model_name="m"} 2e15\n'
        'vllm:estimated_flops_per_gpu_total{engine="1",model_name="m"} 4e15\n'
    )
    assert parse(body).models["m"].flops_per_gpu == 3e15


def test_vllm_reports_no_recomputed_tokens_even_with_its_recomputed_prompt_counter() -> None:
    body = (
        'vllm:prompt_tokens_recomputed_total{engine="0",model_name="m"} 17\n'
        'vllm:num_preemptions_total{engine="0",model_name="m"} 4\n'
        'vllm:generation_tokens_total{engine="0",model_name="m"} 100\n'
    )
    values = parse(body).models["m"]
    assert (values.recomputed_prompt_tokens, values.recomputed_generation_tokens) == (None, None)
