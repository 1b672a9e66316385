"""The LMDeploy adapter on literal bodies: current and older names."""

from __future__ import annotations

from exporter.sources.servers.lmdeploy import ADAPTER

parse = ADAPTER.parse

LEGACY = """\
# HELP lmdeploy:request_success_total Number of successful requests.
# TYPE lmdeploy:request_success_total counter
lmdeploy:request_success_total 12.0
lmdeploy:request_failure_total 3.0
lmdeploy:request_total_total 15.0
lmdeploy:first_token_latency_seconds_bucket{le="0.5"} 10.0
lmdeploy:first_token_latency_seconds_bucket{le="+Inf"} 15.0
lmdeploy:first_token_latency_seconds_count 15.0
lmdeploy:first_token_latency_seconds_sum 6.0
lmdeploy:duration_queue_seconds_bucket{le="+Inf"} 15.0
lmdeploy:duration_queue_seconds_count 15.0
lmdeploy:duration_queue_seconds_sum 0.75
"""


def test_the_older_metrics_count_successes_and_failures_and_have_no_model_label() -> None:
    sample = parse(LEGACY)
    (values,) = sample.models.values()
    assert list(sample.models) == [""]
    assert values.requests_finished == 12 + 3
    assert values.generation_tokens is None
    assert values.histograms["time_to_first_token"].count == 15
    assert values.histograms["request_queue_time"].sum == 0.75


def test_data_parallel_engines_are_summed_and_the_fuller_cache_shows() -> None:
    body = (
        'lmdeploy:generation_tokens_total{engine="0",model_name="m"} 100.0\n'
        'lmdeploy:generation_tokens_total{engine="1",model_name="m"} 50.0\n'
        'lmdeploy:gpu_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        'lmdeploy:gpu_cache_usage_perc{engine="1",model_name="m"} 0.5\n'
    )
    values = parse(body).models["m"]
    assert (values.generation_tokens, values.kv_cache_usage_ratio) == (150.0, 0.5)


def test_the_per_iteration_inter_token_latency_wins_over_the_per_request_one() -> None:
    body = (
        'lmdeploy:iter_token_latency_bucket{le="+Inf",model_name="m"} 90.0\n'
        'lmdeploy:iter_token_latency_count{model_name="m"} 90.0\n'
        'lmdeploy:iter_token_latency_sum{model_name="m"} 1.8\n'
        'lmdeploy:time_per_output_token_seconds_bucket{le="+Inf",model_name="m"} 3.0\n'
        'lmdeploy:time_per_output_token_seconds_count{model_name="m"} 3.0\n'
        'lmdeploy:time_per_output_token_seconds_sum{model_name="m"} 0.06\n'
    )
    assert parse(body).models["m"].histograms["inter_token_latency"].count == 90
