"""`kind: auto` reasons about what a body holds: engines show their counters; look-alikes are refused, saying why."""

from __future__ import annotations

import pytest

from exporter.sources.servers import (
    ParseError,
    Refusal,
    RefusedBody,
    UnrecognizedBody,
    adapter_kinds,
    detect,
    get_adapter,
)
from exporter.sources.servers._base import registry
from tests.conftest import fixture_text
from tests.test_servers_fixtures import KINDS

ROUTER = (
    "# TYPE vllm:num_requests_running gauge\n"
    'vllm:num_requests_running{server="http://10.0.0.11:8000"} 3.0\n'
    "# TYPE vllm:current_qps gauge\n"
    'vllm:current_qps{server="http://10.0.0.11:8000"} 0.35\n'
    "# TYPE vllm:input_tokens_total counter\n"
    'vllm:input_tokens_total{model="m",server="http://10.0.0.11:8000"} 9310.0\n'
)


def claimants(text: str) -> set[str]:
    """Every kind whose own detection claims the body, whatever the order."""
    return {adapter.kind for adapter in registry() if adapter.detect(text) is True}


def test_the_registry_keeps_its_declared_order() -> None:
    kinds = adapter_kinds()
    assert kinds.index("triton") < kinds.index("vllm")
    assert kinds[-1] == "nim"  # the one fallback, asked last
    assert set(kinds) >= {"trtllm", "dynamo", "aphrodite"}


@pytest.mark.parametrize(("name", "kind"), sorted(KINDS.items()))
def test_a_body_another_adapter_also_claims_is_claimed_first_by_the_one_declared_ahead_of_it(
    name: str, kind: str
) -> None:
    others = claimants(fixture_text("servers", name)) - {kind}
    assert all(other in get_adapter(kind).ahead_of for other in others), others


def test_the_production_stack_router_is_refused_with_the_engines_to_point_at() -> None:
    with pytest.raises(RefusedBody, match="vLLM production-stack router, not an engine") as refused:
        detect(ROUTER)
    assert str(refused.value).endswith("(this router sends to http://10.0.0.11:8000/metrics)")


def test_an_older_router_with_only_per_backend_gauges_is_refused_too() -> None:
    body = 'vllm:num_requests_running{server="http://a:8000"} 1\nvllm:num_requests_waiting{server="http://b:8000/"} 0\n'
    verdict = get_adapter("vllm").detect(body)
    assert isinstance(verdict, Refusal)
    assert "http://a:8000/metrics, http://b:8000/metrics)" in verdict.reason


def test_a_router_with_many_backends_names_three_and_counts_the_rest_on_one_line() -> None:
    body = "".join(f'vllm:current_qps{{server="http://10.0.0.{i}:8000"}} 1\n' for i in range(7))
    body += 'vllm:current_qps{server="http://evil\\n:8000"} 1\n'  # an escaped newline is not shown
    verdict = get_adapter("vllm").detect(body)
    assert isinstance(verdict, Refusal) and "\n" not in verdict.reason
    assert "http://10.0.0.2:8000/metrics and 4 more)" in verdict.reason
    assert "evil" not in verdict.reason


def test_an_engine_shows_its_counters_a_body_with_only_vllm_gauges_is_not_claimed() -> None:
    assert get_adapter("vllm").detect('vllm:num_requests_running{model_name="m"} 1\n') is False
    assert get_adapter("vllm").detect('vllm:request_success_total{finished_reason="stop",model_name="m"} 1\n') is True


MINDIE = (
    'request_received_total{model_name="m"} 4\n'
    'request_success_total{model_name="m"} 4\n'
    'generation_tokens_total{model_name="m"} 578\n'
    'num_requests_running{model_name="m"} 0\n'
)


def test_mindie_is_identified_and_refused_not_read_as_nim() -> None:
    with pytest.raises(RefusedBody, match="Huawei MindIE") as refused:
        detect(MINDIE)
    assert "remove this server" in str(refused.value)


def test_nim_needs_its_counters_too() -> None:
    assert get_adapter("nim").detect('num_requests_running{model_name="m"} 1\n') is False
    assert detect('num_requests_running{model_name="m"} 1\ngeneration_tokens_total{model_name="m"} 2\n').kind == "nim"


@pytest.mark.parametrize("body", ["[]", "  [ ]\n", '[{"iter": 3, "iterLatencyMS": 7.0, "numActiveRequests": 1}]'])
def test_trtllm_serve_json_metrics_is_refused_with_the_path_to_use(body: str) -> None:
    with pytest.raises(RefusedBody, match=r"trtllm-serve's /metrics .*/prometheus/metrics on the same port"):
        detect(body)


@pytest.mark.parametrize("body", ['{"status": "ok"}', '\n[{"a": 1}]'])
def test_other_json_is_unrecognized_with_a_reason_that_says_it_is_json(body: str) -> None:
    with pytest.raises(UnrecognizedBody, match="it is JSON, not the Prometheus text format"):
        detect(body)


def test_kind_trtllm_on_the_json_endpoint_gives_the_same_reason() -> None:
    with pytest.raises(ParseError, match=r"point the exporter at /prometheus/metrics"):
        get_adapter("trtllm").parse(fixture_text("servers", "refused", "trtllm-serve-json-metrics-reconstructed.json"))


WORKER_ONLY = (
    "# TYPE dynamo_component_requests_total counter\n"
    'dynamo_component_requests_total{dynamo_component="tensorrt_llm",dynamo_endpoint="generate",model="m"} 2\n'
    "dynamo_component_uptime_seconds 59.0\n"
)


def test_a_dynamo_worker_without_engine_families_is_refused_with_what_to_change() -> None:
    with pytest.raises(RefusedBody, match="--publish-events-and-metrics"):
        detect(WORKER_ONLY)


def test_kind_dynamo_on_a_worker_says_to_use_the_engines_kind() -> None:
    body = fixture_text("servers", "dynamo-worker-vllm-0.8-real.prom")
    with pytest.raises(ParseError, match=r"Dynamo worker: read it with its engine's kind"):
        get_adapter("dynamo").parse(body)


@pytest.mark.parametrize("kind", adapter_kinds())
@pytest.mark.parametrize("body", ["", "# HELP x y\n", "<html></html>", "up 1\n"])
def test_no_adapter_claims_or_refuses_a_body_without_its_families(kind: str, body: str) -> None:
    assert get_adapter(kind).detect(body) is False


def test_the_configured_kind_wins_over_what_detection_would_say() -> None:
    # kind: nim on a MindIE body reads it as NIM's names say; the configuration is the user's word
    sample = get_adapter("nim").parse(MINDIE)
    assert (sample.kind, sample.models["m"].generation_tokens) == ("nim", 578.0)
