"""TGI and NIM on literal bodies, and the side endpoints that name their model and version."""

from __future__ import annotations

import pytest

from exporter.model import ModelSample, ServerSample, TokenCounting
from exporter.sources.servers import ParseError, nim, tgi


def test_tgi_without_success_and_failure_counts_requests_from_the_request_counter() -> None:
    sample = tgi.ADAPTER.parse("tgi_request_count 7\ntgi_queue_size 2\n")
    assert sample.models[""].requests_finished == 7
    assert sample.models[""].requests_waiting == 2


def test_tgi_before_any_failure_counts_the_successes_alone() -> None:
    assert tgi.ADAPTER.parse("tgi_request_success 4\ntgi_request_count 9\n").models[""].requests_finished == 4


def test_tgi_info_names_the_model_and_the_version() -> None:
    sample = tgi.ADAPTER.parse("tgi_request_success 4\n")
    named = tgi.merge_info(sample, '{"model_id": "teknium/OpenHermes-2.5-Mistral-7B", "version": "3.3.5"}')
    assert list(named.models) == ["teknium/OpenHermes-2.5-Mistral-7B"]
    assert named.version == "3.3.5"


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "[" * 100_000, '{"model_id": 5}'])
def test_a_tgi_info_answer_that_is_not_usable_changes_nothing_or_is_a_parse_error(body: str) -> None:
    sample = tgi.ADAPTER.parse("tgi_request_success 4\n")
    try:
        merged = tgi.merge_info(sample, body)
    except ParseError as exc:
        assert "GET /info" in str(exc)
    else:
        assert merged == sample


def test_tgi_info_never_renames_a_sample_that_already_names_its_models() -> None:
    sample = ServerSample("tgi", {"a": ModelSample(), "b": ModelSample()}, TokenCounting.AT_COMPLETION)
    assert tgi.merge_info(sample, '{"model_id": "x"}').models.keys() == {"a", "b"}


def test_nim_counts_every_finish_reason_as_a_finished_request() -> None:
    body = (
        'request_finish_total{finished_reason="stop",model_name="m"} 3.0\n'
        'request_finish_total{finished_reason="abort",model_name="m"} 2.0\n'
        'request_success_total{model_name="m"} 3.0\n'
    )
    assert nim.parse(body).models["m"].requests_finished == 5


def test_nim_without_the_finish_counter_adds_successes_and_failures() -> None:
    body = 'request_success_total{model_name="m"} 3.0\nrequest_failure_total{model_name="m"} 1.0\n'
    sample = nim.parse(body)
    assert sample.models["m"].requests_finished == 4
    assert sample.kind == "nim"


def test_nim_version_comes_from_its_version_endpoint() -> None:
    sample = nim.parse('generation_tokens_total{model_name="m"} 1.0\n')
    assert nim.merge_version(sample, '{"release":"1.0.0","api":"1.0.0"}').version == "1.0.0"
    assert nim.merge_version(sample, '{"api":"1.0.0"}').version == ""
