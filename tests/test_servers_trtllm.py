"""The TensorRT-LLM adapter on literal bodies: its three spellings, counters made at start-up, per-process gauges."""

from __future__ import annotations

import pytest

from exporter.model import TokenCounting
from exporter.sources.servers import detect
from exporter.sources.servers.trtllm import ADAPTER

parse = ADAPTER.parse

L = 'engine_type="trtllm",model_name="m"'


@pytest.mark.parametrize("prefix", ["trtllm_", "trtllm:"])
def test_both_prefixes_read_the_same_families(prefix: str) -> None:
    body = (
        f'{prefix}request_success_total{{{L},finished_reason="length"}} 3\n'
        f'{prefix}request_success_total{{{L},finished_reason="stop"}} 1\n'
        f"{prefix}generation_tokens_total{{{L}}} 865\n"
    )
    values = parse(body).models["m"]
    assert (values.requests_finished, values.generation_tokens) == (3 + 1, 865)
    assert detect(body).kind == "trtllm"


def test_the_unprefixed_names_of_older_servers_are_read_by_their_engine_type_label() -> None:
    body = 'request_success_total{engine_type="undefined",finished_reason="length",model_name="undefined"} 7\n'
    assert detect(body).kind == "trtllm"
    assert parse(body).models["undefined"].requests_finished == 7


def test_a_prefixed_body_is_read_alone_even_beside_unprefixed_families() -> None:
    body = f'trtllm_request_success_total{{{L},finished_reason="stop"}} 2\nrequest_success_total{{{L}}} 40\n'
    assert parse(body).models["m"].requests_finished == 2


def test_where_the_cached_token_counter_exists_a_counter_not_yet_made_counts_zero() -> None:
    # trtllm-serve creates prompt_cached_tokens_total at start-up; the others appear on the first finished request
    fresh = f"trtllm_prompt_cached_tokens_total{{{L}}} 0.0\n"
    values = parse(fresh).models["m"]
    assert (values.prompt_tokens, values.generation_tokens, values.requests_finished) == (0, 0, 0)
    assert values.requests_running is None


def test_without_the_cached_token_counter_absent_counters_stay_absent() -> None:
    # a Dynamo worker of early 2026: TensorRT-LLM then had no token counters at all
    values = parse(f'trtllm_request_success_total{{{L},finished_reason="length"}} 2\n').models["m"]
    assert (values.prompt_tokens, values.generation_tokens) == (None, None)


def test_a_gauge_with_a_pid_label_per_process_counts_once() -> None:
    body = (
        f'trtllm_num_requests_running{{{L},pid="4127"}} 3\n'
        f'trtllm_num_requests_running{{{L},pid="4128"}} 0\n'
        f'trtllm_kv_cache_utilization{{{L},pid="4127"}} 0.25\n'
        f'trtllm_kv_cache_utilization{{{L},pid="4128"}} 0.5\n'
    )
    values = parse(body).models["m"]
    assert (values.requests_running, values.kv_cache_usage_ratio) == (3, 0.5)


def test_tokens_are_counted_when_requests_finish() -> None:
    assert parse(f"trtllm_generation_tokens_total{{{L}}} 1\n").token_counting is TokenCounting.AT_COMPLETION


def test_dynamo_s_created_gauges_and_component_families_are_ignored() -> None:
    body = (
        'dynamo_component_requests_total{dynamo_component="tensorrt_llm",model="m"} 9\n'
        f'trtllm_request_success_total{{{L},finished_reason="length"}} 2.0\n'
        f'trtllm_request_success_created{{{L},finished_reason="length"}} 1.7682648369328544e+09\n'
    )
    assert parse(body).models["m"].requests_finished == 2
