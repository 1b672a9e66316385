"""The Dynamo frontend adapter on literal bodies: model names, live tokens, models not yet asked for."""

from __future__ import annotations

from exporter.model import TokenCounting
from exporter.sources.servers.dynamo import ADAPTER

parse = ADAPTER.parse


def test_lower_cased_request_families_take_the_case_of_the_model_gauges() -> None:
    body = (
        'dynamo_frontend_output_tokens_total{model="qwen/qwen3-0.6b"} 300\n'
        'dynamo_frontend_model_context_length{model="Qwen/Qwen3-0.6B"} 40960\n'
    )
    assert list(parse(body).models) == ["Qwen/Qwen3-0.6B"]


def test_names_already_in_their_case_are_kept() -> None:
    body = (
        'dynamo_frontend_output_tokens_total{model="Qwen/Qwen3-0.6B"} 300\n'
        'dynamo_frontend_model_context_length{model="Qwen/Qwen3-0.6B"} 40960\n'
    )
    assert parse(body).models["Qwen/Qwen3-0.6B"].generation_tokens == 300


def test_requests_for_unknown_models_are_left_out() -> None:
    body = (
        'dynamo_frontend_requests_total{endpoint="chat_completions",model="m",status="success"} 4\n'
        'dynamo_frontend_requests_total{endpoint="chat_completions",model="unknown_model",status="error"} 9\n'
    )
    assert {name: values.requests_finished for name, values in parse(body).models.items()} == {"m": 4}


def test_every_status_endpoint_and_request_type_counts_as_a_finished_request() -> None:
    body = "".join(
        f'dynamo_frontend_requests_total{{endpoint="{e}",model="m",request_type="{t}",status="{s}"}} {n}\n'
        for e, t, s, n in (("chat_completions", "stream", "success", 5), ("completions", "unary", "error", 2))
    )
    assert parse(body).models["m"].requests_finished == 5 + 2


def test_a_model_served_before_its_first_request_counts_zero() -> None:
    values = parse('dynamo_frontend_model_context_length{model="Org/Model"} 8192\n').models["Org/Model"]
    assert (values.prompt_tokens, values.generation_tokens, values.requests_finished) == (0, 0, 0)


def test_live_output_tokens_count_incrementally_and_the_older_length_sum_at_completion() -> None:
    live = parse('dynamo_frontend_output_tokens_total{model="m"} 10\n')
    older = parse('dynamo_frontend_output_sequence_tokens_sum{model="m"} 7\n')
    assert (live.token_counting, live.models["m"].generation_tokens) == (TokenCounting.INCREMENTAL, 10)
    assert (older.token_counting, older.models["m"].generation_tokens) == (TokenCounting.AT_COMPLETION, 7)


def test_prompt_tokens_are_the_sum_of_the_input_length_histogram() -> None:
    assert parse('dynamo_frontend_input_sequence_tokens_sum{model="m"} 33\n').models["m"].prompt_tokens == 33


def test_engine_bound_requests_run_and_the_active_gauge_is_the_fallback() -> None:
    both = parse('dynamo_frontend_inflight_requests{model="m"} 2\ndynamo_frontend_active_requests{model="m"} 5\n')
    newer = parse('dynamo_frontend_active_requests{model="m"} 5\n')
    assert (both.models["m"].requests_running, newer.models["m"].requests_running) == (2, 5)
