"""The SGLang adapter on literal bodies: ranks, data-parallel groups, renamed families."""

from __future__ import annotations

from exporter.sources.servers.sglang import ADAPTER, primary_ranks

parse = ADAPTER.parse

M = 'model_name="m"'


def test_data_parallel_groups_are_summed_and_replicated_tensor_ranks_are_not() -> None:
    body = "".join(
        f'sglang:num_running_reqs{{dp_rank="{dp}",{M},tp_rank="{tp}"}} {running}\n'
        for dp, tp, running in (("0", "0", 3), ("0", "1", 3), ("1", "2", 5), ("1", "3", 5))
    )
    assert parse(body).models["m"].requests_running == 3 + 5


def test_with_every_scheduler_reporting_only_the_first_tensor_rank_counts() -> None:
    body = "".join(
        f'sglang:num_queue_reqs{{{M},pp_rank="0",tp_rank="{tp}"}} 4\n'
        f'sglang:token_usage{{{M},pp_rank="0",tp_rank="{tp}"}} {0.1 * (int(tp) + 1)}\n'
        for tp in ("0", "1", "2", "3")
    )
    values = parse(body).models["m"]
    assert values.requests_waiting == 4
    assert values.kv_cache_usage_ratio == 0.1


def test_tokenizer_counters_without_rank_labels_are_summed_over_streaming_and_not() -> None:
    body = (
        f'sglang:generation_tokens_total{{is_streaming="true",{M}}} 10\n'
        f'sglang:generation_tokens_total{{is_streaming="false",{M}}} 5\n'
    )
    assert parse(body).models["m"].generation_tokens == 15


def test_rank_labels_that_are_not_numbers_still_pick_one_series() -> None:
    series = [({"tp_rank": "b"}, 1.0), ({"tp_rank": "a"}, 2.0), ({"tp_rank": "10"}, 3.0), ({"tp_rank": "9"}, 4.0)]
    assert primary_ranks(series) == [({"tp_rank": "9"}, 4.0)]


def test_without_a_request_counter_finished_requests_come_from_the_end_to_end_histogram() -> None:
    body = (
        f'sglang:e2e_request_latency_seconds_bucket{{le="1.0",{M}}} 2\n'
        f'sglang:e2e_request_latency_seconds_bucket{{le="+Inf",{M}}} 7\n'
        f"sglang:e2e_request_latency_seconds_count{{{M}}} 7\n"
        f"sglang:e2e_request_latency_seconds_sum{{{M}}} 9.5\n"
    )
    values = parse(body).models["m"]
    assert values.requests_finished == 7
    assert values.histograms["e2e_request_latency"].sum == 9.5


def test_the_old_time_per_output_token_name_feeds_the_inter_token_latency() -> None:
    body = (
        f'sglang:time_per_output_token_seconds_bucket{{le="0.1",{M}}} 3\n'
        f'sglang:time_per_output_token_seconds_bucket{{le="+Inf",{M}}} 4\n'
        f"sglang:time_per_output_token_seconds_count{{{M}}} 4\n"
        f"sglang:time_per_output_token_seconds_sum{{{M}}} 0.3\n"
    )
    assert parse(body).models["m"].histograms["inter_token_latency"].count == 4


def test_queue_time_is_read_from_the_scheduler_histogram() -> None:
    body = (
        f'sglang:queue_time_seconds_bucket{{le="0.5",{M},tp_rank="0"}} 1\n'
        f'sglang:queue_time_seconds_bucket{{le="+Inf",{M},tp_rank="0"}} 2\n'
        f'sglang:queue_time_seconds_count{{{M},tp_rank="0"}} 2\n'
        f'sglang:queue_time_seconds_sum{{{M},tp_rank="0"}} 1.25\n'
    )
    histogram = parse(body).models["m"].histograms["request_queue_time"]
    assert histogram.buckets == ((0.5, 1.0), (float("inf"), 2.0))


def test_the_older_gpu_time_family_and_its_forward_prefixed_categories_are_read() -> None:
    rank = f'{M},pp_rank="0",tp_rank="0"'
    body = (
        f'sglang:gpu_execution_seconds_total{{category="forward_extend",{rank}}} 12.5\n'
        f'sglang:gpu_execution_seconds_total{{category="forward_mixed",{rank}}} 0.5\n'
        f'sglang:gpu_execution_seconds_total{{category="forward_decode",{rank}}} 40\n'
        f'sglang:gpu_execution_seconds_total{{category="forward_target_verify",{rank}}} 2\n'
        f'sglang:gpu_execution_seconds_total{{category="forward_idle",{rank}}} 9\n'
    )
    values = parse(body).models["m"]
    assert (values.prefill_gpu_seconds, values.decode_gpu_seconds) == (12.5 + 0.5, 40 + 2)  # idle is neither


def test_the_newer_gpu_time_family_wins_over_the_older_one() -> None:
    rank = f'{M},pp_rank="0",tp_rank="0"'
    body = (
        f'sglang:forward_execution_seconds_total{{category="extend",{rank}}} 3\n'
        f'sglang:forward_execution_seconds_total{{category="decode",{rank}}} 7\n'
        f'sglang:gpu_execution_seconds_total{{category="forward_extend",{rank}}} 300\n'
    )
    values = parse(body).models["m"]
    assert (values.prefill_gpu_seconds, values.decode_gpu_seconds) == (3, 7)


def test_flops_per_gpu_are_averaged_over_data_parallel_groups_not_summed() -> None:
    body = "".join(
        f'sglang:estimated_flops_per_gpu_total{{dp_rank="{dp}",{M},tp_rank="{tp}"}} {flops}\n'
        for dp, tp, flops in (("0", "0", 4e15), ("0", "1", 4e15), ("1", "2", 6e15), ("1", "3", 6e15))
    )
    assert parse(body).models["m"].flops_per_gpu == (4e15 + 6e15) / 2
