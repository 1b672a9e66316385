"""The Triton adapter on literal bodies: versions, TensorRT-LLM gauges, the vLLM backend."""

from __future__ import annotations

from exporter.model import TokenCounting
from exporter.sources.servers import detect
from exporter.sources.servers.triton import parse


def test_versions_of_one_model_are_summed() -> None:
    body = (
        'nv_inference_request_success{model="m",version="1"} 10\n'
        'nv_inference_request_success{model="m",version="2"} 5\n'
        'nv_inference_request_failure{model="m",reason="CANCELED",version="2"} 1\n'
        'nv_inference_pending_request_count{model="m",version="1"} 2\n'
        'nv_inference_pending_request_count{model="m",version="2"} 1\n'
    )
    values = parse(body).models["m"]
    assert (values.requests_finished, values.requests_waiting) == (16.0, 3.0)


def test_kv_cache_usage_falls_back_to_used_over_maximum_blocks() -> None:
    body = (
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="t",version="1"} 25\n'
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="t",version="1"} 100\n'
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="z",version="1"} 5\n'
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="z",version="1"} 0\n'
        'nv_inference_request_success{model="z",version="1"} 1\n'
    )
    sample = parse(body)
    assert sample.models["t"].kv_cache_usage_ratio == 0.25
    assert sample.models["z"].kv_cache_usage_ratio is None


def test_the_backend_queue_wins_over_the_core_pending_count() -> None:
    body = (
        'nv_inference_pending_request_count{model="t",version="1"} 0\n'
        'nv_trt_llm_request_metrics{model="t",request_type="waiting",version="1"} 7\n'
        'nv_trt_llm_request_metrics{model="t",request_type="active",version="1"} 3\n'
    )
    values = parse(body).models["t"]
    assert (values.requests_running, values.requests_waiting) == (3.0, 7.0)


def test_token_counts_come_from_the_sums_of_the_token_length_histograms() -> None:
    body = (
        'nv_llm_input_token_len_count{model="t",response_metric_type="total_input_tokens",version="1"} 2\n'
        'nv_llm_input_token_len_sum{model="t",response_metric_type="total_input_tokens",version="1"} 300\n'
        'nv_llm_output_token_len_sum{model="t",response_metric_type="total_output_tokens",version="1"} 42\n'
    )
    sample = parse(body)
    assert (sample.models["t"].prompt_tokens, sample.models["t"].generation_tokens) == (300.0, 42.0)
    assert sample.models["t"].histograms == {}
    assert sample.token_counting is TokenCounting.AT_COMPLETION


def test_the_vllm_backend_is_read_by_model_label_and_counts_incrementally() -> None:
    body = (
        'nv_inference_request_success{model="v",version="1"} 3\n'
        'vllm:generation_tokens_total{model="v",version="1"} 16\n'
        'vllm:num_requests_running{model="v",version="1"} 1\n'
        'vllm:gpu_cache_usage_perc{model="v",version="1"} 0.5\n'
    )
    sample = parse(body)
    values = sample.models["v"]
    assert (values.generation_tokens, values.requests_finished, values.requests_running) == (16.0, 3.0, 1.0)
    assert values.kv_cache_usage_ratio == 0.5
    assert sample.token_counting is TokenCounting.INCREMENTAL


def test_a_body_with_triton_and_vllm_families_is_detected_as_triton() -> None:
    body = 'vllm:generation_tokens_total{model="v",version="1"} 16\nnv_inference_count{model="v",version="1"} 1\n'
    assert detect(body).kind == "triton"


def test_core_duration_counters_never_become_histograms() -> None:
    body = (
        'nv_inference_request_success{model="m",version="1"} 1\n'
        'nv_inference_request_duration_us{model="m",version="1"} 1500000\n'
        'nv_inference_queue_duration_us{model="m",version="1"} 2000\n'
    )
    assert parse(body).models["m"].histograms == {}
