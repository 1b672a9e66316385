"""Every recorded body: `kind: auto` picks its server, and its normalized values are exactly the expected ones.

Bodies the exporter must not read as any server (a router, MindIE, trtllm-serve's JSON) are in
``refused/``, each with the words its one-line reason must contain.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from exporter.inspector import normalize
from exporter.model import Histogram, TokenCounting
from exporter.sources.servers import RefusedBody, UnrecognizedBody, adapter_kinds, detect, get_adapter
from tests.conftest import FIXTURES, fixture_text

SERVERS = FIXTURES / "servers"
REFUSED_DIR = SERVERS / "refused"

KINDS = {
    "vllm-0.33.0-reconstructed.prom": "vllm",
    "tgi-3.x.prom": "tgi",
    "sglang-0.4.x-docs.prom": "sglang",
    "sglang-0.5.23-reconstructed.prom": "sglang",
    "sglang-0.5-economics-reconstructed.prom": "sglang",
    "triton-trtllm-backend-readme.prom": "triton",
    "triton-trtllm-ensemble-reconstructed.prom": "triton",
    "triton-vllm-backend-reconstructed.prom": "triton",
    "llamacpp-real-tinymodel.prom": "llamacpp",
    "llama.cpp-reconstructed.prom": "llamacpp",
    "lmdeploy-reconstructed.prom": "lmdeploy",
    "nim-1.x-datadog-real.prom": "nim",
    "trtllm-serve-1.3-reconstructed.prom": "trtllm",
    "trtllm-serve-pre1.3-unprefixed-reconstructed.prom": "trtllm",
    "dynamo-worker-trtllm-0.8-real.prom": "trtllm",
    "dynamo-worker-trtllm-colon-docs.prom": "trtllm",
    "dynamo-frontend-0.8-real.prom": "dynamo",
    "dynamo-worker-vllm-0.8-real.prom": "vllm",
    "dynamo-worker-sglang-0.8-real.prom": "sglang",
    "ray-vllm-v0-ray2.32-real.prom": "vllm",
    "ray-vllm-v1-ray2.52-reconstructed.prom": "vllm",
    "aphrodite-v1-reconstructed.prom": "aphrodite",
    "vllm-0.11-api-server-count-4-reconstructed.prom": "vllm",
}


FIELDS = (
    "prompt_tokens",
    "generation_tokens",
    "requests_finished",
    "requests_running",
    "requests_waiting",
    "kv_cache_usage_ratio",
)
ECONOMICS = (
    "prompt_cached_tokens",
    "recomputed_prompt_tokens",
    "recomputed_generation_tokens",
    "prefill_gpu_seconds",
    "decode_gpu_seconds",
    "flops_per_gpu",
)
"""Values few servers report: ``None`` unless a fixture's entry names them."""


def values(*numbers: float | None, **economics: float) -> dict[str, float | None]:
    """The inspect-shaped values of one model, in the order of ``FIELDS``, then ``ECONOMICS``."""
    assert set(economics) <= set(ECONOMICS), economics
    return dict(zip(FIELDS, numbers, strict=True)) | {name: economics.get(name) for name in ECONOMICS}


EXPECTED = {
    # prompt_tokens_cached_total, engines 0 and 1: 1024 + 0
    "vllm-0.33.0-reconstructed.prom": {
        "Qwen/Qwen3-8B": values(3164.0, 1553.0, 4.0, 3.0, 0.0, 0.0123, prompt_cached_tokens=1024.0)
    },
    "tgi-3.x.prom": {"": values(662.0, 3423.0, 111.0, 0.0, 0.0, None)},
    "sglang-0.4.x-docs.prom": {
        "meta-llama/Llama-3.1-8B-Instruct": values(8128902.0, 7557572.0, 11228.0, 162.0, 2826.0, 0.28)
    },
    "sglang-0.5.23-reconstructed.prom": {"Qwen/Qwen3-8B": values(5234.0, 40960.0, 32.0, 3.0, 1.0, 0.27)},
    # tp_rank 0 only (rank 1 reports the same batches); prompt 32768 + 98304, generation 8192 + 40960,
    # requests 32 + 96, cached device 65536 + host 4096, prefill = extend 41.25 + mixed 2.5, decode 180.5
    # (idle 0.75 is neither), FLOPs per GPU of rank 0's one data-parallel group.
    "sglang-0.5-economics-reconstructed.prom": {
        "Qwen/Qwen3-32B": values(
            131072.0,
            49152.0,
            128.0,
            6.0,
            0.0,
            0.41,
            prompt_cached_tokens=69632.0,
            recomputed_prompt_tokens=6144.0,
            recomputed_generation_tokens=1536.0,
            prefill_gpu_seconds=43.75,
            decode_gpu_seconds=180.5,
            flops_per_gpu=2.5e17,
        )
    },
    "triton-trtllm-backend-readme.prom": {"tensorrt_llm": values(None, None, 0.0, 0.0, 1.0, 0.4875)},
    "triton-trtllm-ensemble-reconstructed.prom": {
        "ensemble": values(None, None, 96.0, None, 0.0, None),
        "postprocessing": values(None, None, 18211.0, None, 0.0, None),
        "preprocessing": values(None, None, 97.0, None, 0.0, None),
        "tensorrt_llm": values(40960.0, 18211.0, 97.0, 4.0, 2.0, 1934 / 6239),
    },
    "triton-vllm-backend-reconstructed.prom": {"vllm_model": values(52.0, 80.0, 6.0, 1.0, 0.0, 0.0625)},
    "lmdeploy-reconstructed.prom": {"Qwen/Qwen2.5-7B-Instruct": values(16277.0, 8887.0, 38.0, 2.0, 1.0, 0.1875)},
    "nim-1.x-datadog-real.prom": {
        "meta/llama-3.1-8b-instruct": values(109.0, 174.0, 5.0, 1.0, 0.0, 2.848191398461977e-4)  # as printed
    },
    # 180+200+212+220 prompt, 256·3+97 generated, 3 length + 1 stop; the stale last iteration's 1 running request;
    # KV 11 of 101256 blocks, as printed
    # cached: trtllm_prompt_cached_tokens_total, 384
    "trtllm-serve-1.3-reconstructed.prom": {
        "Qwen3-8B": values(812.0, 865.0, 4.0, 1.0, 0.0, 1.0863553764715177e-4, prompt_cached_tokens=384.0)
    },
    "trtllm-serve-pre1.3-unprefixed-reconstructed.prom": {"undefined": values(None, None, 1.0, None, None, None)},
    "dynamo-worker-trtllm-0.8-real.prom": {"Qwen/Qwen3-0.6B": values(None, None, 2.0, None, None, None)},
    "dynamo-worker-trtllm-colon-docs.prom": {"Qwen/Qwen3-0.6B": values(None, None, 150.0 + 5.0, None, None, None)},
    # the request families' "qwen/qwen3-0.6b", spelled as the model gauges spell it; no KV cache at the frontend
    "dynamo-frontend-0.8-real.prom": {"Qwen/Qwen3-0.6B": values(33.0, 300.0, 1.0, 0.0, 0.0, None)},
    "dynamo-worker-vllm-0.8-real.prom": {
        "Qwen/Qwen3-0.6B": values(66.0, 600.0, 0.0 + 2.0 + 0.0 + 0.0, 0.0, 0.0, 0.0, prompt_cached_tokens=0.0)
    },
    "dynamo-worker-sglang-0.8-real.prom": {"Qwen/Qwen3-0.6B": values(33.0, 300.0, 1.0, 0.0, 0.0, 0.0)},
    "ray-vllm-v0-ray2.32-real.prom": {
        "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8": values(58.0, 300.0, 1.0, 0.0, 0.0, 5.882698982295764e-05)
    },
    "ray-vllm-v1-ray2.52-reconstructed.prom": {"qwen-0.5b": values(17.0 + 23.0, 200.0, 2.0, 0.0, 0.0, 0.0)},
    "aphrodite-v1-reconstructed.prom": {
        # cached: prefix_cache_hits_total (32), the newer of the two names the body has
        "NousResearch/Meta-Llama-3.1-8B-Instruct": values(
            30.0 + 45.0 + 61.0, 333.0, 1.0 + 2.0 + 0.0, 0.0, 0.0, 0.0, prompt_cached_tokens=32.0
        )
    },
    # KV cache: the largest of the four pids (1907's stale value), never their sum
    "vllm-0.11-api-server-count-4-reconstructed.prom": {
        "Qwen/Qwen3-8B": values(
            500.0, 298.0, 0.0 + 4.0 + 1.0, 0.0, 0.0, 0.0031446540880503146, prompt_cached_tokens=192.0
        )
    },
}
"""Exact normalized values per fixture and model (llama.cpp's are asserted by its own adapter's tests)."""

COUNTING = {
    "vllm-0.33.0-reconstructed.prom": TokenCounting.INCREMENTAL,
    "tgi-3.x.prom": TokenCounting.AT_COMPLETION,
    "sglang-0.4.x-docs.prom": TokenCounting.AT_COMPLETION,
    "sglang-0.5.23-reconstructed.prom": TokenCounting.AT_COMPLETION,
    "sglang-0.5-economics-reconstructed.prom": TokenCounting.AT_COMPLETION,
    "triton-trtllm-backend-readme.prom": TokenCounting.AT_COMPLETION,
    "triton-trtllm-ensemble-reconstructed.prom": TokenCounting.AT_COMPLETION,
    "triton-vllm-backend-reconstructed.prom": TokenCounting.INCREMENTAL,
    "lmdeploy-reconstructed.prom": TokenCounting.INCREMENTAL,
    "nim-1.x-datadog-real.prom": TokenCounting.INCREMENTAL,
    "trtllm-serve-1.3-reconstructed.prom": TokenCounting.AT_COMPLETION,
    "trtllm-serve-pre1.3-unprefixed-reconstructed.prom": TokenCounting.AT_COMPLETION,
    "dynamo-worker-trtllm-0.8-real.prom": TokenCounting.AT_COMPLETION,
    "dynamo-worker-trtllm-colon-docs.prom": TokenCounting.AT_COMPLETION,
    "dynamo-frontend-0.8-real.prom": TokenCounting.INCREMENTAL,  # output_tokens_total moves as tokens stream
    "dynamo-worker-vllm-0.8-real.prom": TokenCounting.INCREMENTAL,
    "dynamo-worker-sglang-0.8-real.prom": TokenCounting.AT_COMPLETION,
    "ray-vllm-v0-ray2.32-real.prom": TokenCounting.INCREMENTAL,
    "ray-vllm-v1-ray2.52-reconstructed.prom": TokenCounting.INCREMENTAL,
    "aphrodite-v1-reconstructed.prom": TokenCounting.INCREMENTAL,
    "vllm-0.11-api-server-count-4-reconstructed.prom": TokenCounting.INCREMENTAL,
}

HISTOGRAMS: dict[str, dict[str, tuple[float, float, int]]] = {
    # fixture → {normalized name: (count, sum in seconds, number of buckets with +Inf)} for its first model,
    # read off the body's _count, _sum and _bucket lines (sums of several series added up), to 5 significant
    # digits: the bodies print sums with float noise (185.39600000000047 is 185.396).
    "tgi-3.x.prom": {
        "e2e_request_latency": (109, 541.21, 36),
        "request_queue_time": (109, 295.28, 36),
        "inter_token_latency": (109, 8.6432, 36),
    },
    "sglang-0.4.x-docs.prom": {
        "time_to_first_token": (11008, 2.3519e6, 21),
        "inter_token_latency": (7400757, 866960.0, 19),  # time_per_output_token_seconds, the 0.4 name
        "e2e_request_latency": (11228, 3.1161e6, 16),
    },
    "sglang-0.5.23-reconstructed.prom": {
        "time_to_first_token": (32, 3.6 + 3.6, 19),  # streaming and non-streaming series
        "inter_token_latency": (200, 2.59, 24),
        "e2e_request_latency": (32, 248.0 + 248.0, 23),
    },
    "triton-trtllm-backend-readme.prom": {},
    "triton-vllm-backend-reconstructed.prom": {
        "time_to_first_token": (6, 0.19, 17),
        "inter_token_latency": (74, 1.11, 14),
        "e2e_request_latency": (5, 6.4, 22),
        "request_queue_time": (5, 0.02, 22),
    },
    "lmdeploy-reconstructed.prom": {
        "time_to_first_token": (40, 8.942, 23),
        "inter_token_latency": (8847, 185.40, 21),
        "e2e_request_latency": (38, 215.63, 22),
        "request_queue_time": (38, 17.108, 22),
    },
    "nim-1.x-datadog-real.prom": {
        "time_to_first_token": (5, 0.61198, 17),
        "inter_token_latency": (169, 1.8569, 14),
        "e2e_request_latency": (5, 2.4688, 11),
    },
    "trtllm-serve-1.3-reconstructed.prom": {
        "time_to_first_token": (4, 0.14889, 23),
        "inter_token_latency": (4, 0.05, 20),  # time_per_output_token_seconds: one mean per request
        "e2e_request_latency": (4, 10.915, 22),
        "request_queue_time": (4, 0.00179, 22),
    },
    "trtllm-serve-pre1.3-unprefixed-reconstructed.prom": {
        "time_to_first_token": (1, 0.041701, 23),
        "inter_token_latency": (1, 0.013514, 20),
        "e2e_request_latency": (1, 3.4878, 22),
        "request_queue_time": (1, 0.00030732, 22),
    },
    "dynamo-worker-trtllm-0.8-real.prom": {
        "time_to_first_token": (2, 0.067953, 23),
        "inter_token_latency": (2, 0.0055588, 20),
        "e2e_request_latency": (2, 1.7300, 22),
        "request_queue_time": (2, 0.011815, 22),
    },
    "dynamo-worker-trtllm-colon-docs.prom": {},  # its histograms have no +Inf bucket: left out
    "dynamo-frontend-0.8-real.prom": {
        "time_to_first_token": (1, 1.5626, 19),
        "inter_token_latency": (299, 0.61269, 14),
        "e2e_request_latency": (1, 2.1776, 11),  # request_duration_seconds
    },
    "dynamo-worker-vllm-0.8-real.prom": {
        "time_to_first_token": (2, 0.41440, 23),
        "inter_token_latency": (598, 3.1599, 20),
        "e2e_request_latency": (2, 3.5737, 22),
        "request_queue_time": (2, 1.8832e-05, 22),
    },
    "dynamo-worker-sglang-0.8-real.prom": {
        "time_to_first_token": (1, 1.5574, 19),
        "inter_token_latency": (299, 0.61386, 24),
        "e2e_request_latency": (1, 2.1712, 23),
        "request_queue_time": (1, 0.0018393, 37),
    },
    "ray-vllm-v0-ray2.32-real.prom": {
        "time_to_first_token": (1, 0.27101, 17),
        "inter_token_latency": (299, 16.179, 14),  # time_per_output_token_seconds, the V0 name
        "e2e_request_latency": (1, 16.450, 11),
    },
    "ray-vllm-v1-ray2.52-reconstructed.prom": {
        "time_to_first_token": (2, 0.0909, 23),
        "inter_token_latency": (198, 2.376, 20),
        "e2e_request_latency": (2, 2.4677, 22),
        "request_queue_time": (2, 0.0005, 22),
    },
    "aphrodite-v1-reconstructed.prom": {
        "time_to_first_token": (3, 0.0716, 23),
        "inter_token_latency": (330, 3.135, 20),
        "e2e_request_latency": (3, 3.2072, 22),
        "request_queue_time": (3, 0.0003, 22),
    },
    "vllm-0.11-api-server-count-4-reconstructed.prom": {
        "time_to_first_token": (5, 0.358, 23),
        "inter_token_latency": (293, 4.1313, 20),
        "e2e_request_latency": (5, 4.4988, 22),
    },
}
SUM_TOLERANCE = 1e-4
"""Relative: the sums above carry five significant digits."""


REFUSED = {
    "vllm-production-stack-router-reconstructed.prom": (
        "vLLM production-stack router",
        "http://10.0.0.11:8000/metrics, http://10.0.0.12:8000/metrics",
    ),
    "mindie-server-gpustack-real-fragment.prom": ("Huawei MindIE", "remove this server"),
    "mindie-motor-coordinator-docs.prom": ("Huawei MindIE", "remove this server"),
    "trtllm-serve-json-metrics-empty-real.json": ("trtllm-serve", "/prometheus/metrics"),
    "trtllm-serve-json-metrics-docs.json": ("trtllm-serve", "/prometheus/metrics"),
    "trtllm-serve-json-metrics-reconstructed.json": ("trtllm-serve", "/prometheus/metrics"),
}
"""Bodies ``kind: auto`` refuses, with words its one-line reason says (what it is, and what to do)."""


def test_every_fixture_file_is_covered() -> None:
    files = {path.name for path in SERVERS.glob("*.prom")}
    assert files == set(KINDS)
    assert set(EXPECTED) | {"llamacpp-real-tinymodel.prom", "llama.cpp-reconstructed.prom"} == files
    assert {path.name for path in REFUSED_DIR.iterdir()} == set(REFUSED)


def test_every_kind_has_a_recorded_body() -> None:
    assert set(KINDS.values()) == set(adapter_kinds())


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bodies_of_no_supported_server_are_refused_with_a_reason_that_says_what_to_do(name: str) -> None:
    with pytest.raises(RefusedBody) as refused:
        detect(fixture_text("servers", "refused", name))
    reason = str(refused.value)
    assert "\n" not in reason and not isinstance(refused.value, UnrecognizedBody)
    for words in REFUSED[name]:
        assert words in reason


@pytest.mark.parametrize(("name", "kind"), sorted(KINDS.items()))
def test_kind_auto_detects_the_server_of_every_fixture(name: str, kind: str) -> None:
    assert detect(fixture_text("servers", name)).kind == kind


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_gives_the_exact_normalized_values_of_every_model(name: str) -> None:
    sample = get_adapter(KINDS[name]).parse(fixture_text("servers", name))
    assert normalize(sample) == {"kind": KINDS[name], "models": EXPECTED[name]}
    assert sample.token_counting is COUNTING[name]


@pytest.mark.parametrize("name", sorted(HISTOGRAMS))
def test_every_fixture_gives_its_latency_histograms_in_seconds(name: str) -> None:
    sample = get_adapter(KINDS[name]).parse(fixture_text("servers", name))
    first = sample.models[min(sample.models)]
    assert set(first.histograms) == set(HISTOGRAMS[name])
    for histogram_name, (count, total, buckets) in HISTOGRAMS[name].items():
        histogram = first.histograms[histogram_name]
        assert (histogram.count, len(histogram.buckets)) == (count, buckets)
        assert histogram.sum == pytest.approx(total, rel=SUM_TOLERANCE)
        assert_well_formed(histogram)


def test_triton_first_response_milliseconds_become_a_first_token_histogram_in_seconds() -> None:
    sample = get_adapter("triton").parse(fixture_text("servers", "triton-trtllm-ensemble-reconstructed.prom"))
    ttft = sample.models["tensorrt_llm"].histograms["time_to_first_token"]
    assert ttft.buckets == ((0.1, 20.0), (0.5, 88.0), (2.0, 96.0), (5.0, 97.0), (math.inf, 97.0))
    assert (ttft.count, ttft.sum) == (97.0, pytest.approx(19.8735))
    assert "time_to_first_token" not in sample.models["ensemble"].histograms


def assert_well_formed(histogram: Histogram) -> None:
    bounds = [bound for bound, _ in histogram.buckets]
    counts = [count for _, count in histogram.buckets]
    assert bounds == sorted(bounds) and bounds[-1] == math.inf
    assert counts == sorted(counts) and counts[-1] == histogram.count


def test_fixtures_state_where_they_come_from() -> None:
    for path in [*Path(SERVERS).glob("*.prom"), *REFUSED_DIR.glob("*.prom")]:
        assert path.read_text(encoding="utf-8").startswith("# source: "), path.name
    readme = (SERVERS / "README.md").read_text(encoding="utf-8")
    for path in [*Path(SERVERS).glob("*.json"), *REFUSED_DIR.glob("*.json")]:  # JSON holds no comment: README does
        assert f"`{path.relative_to(SERVERS)}`" in readme, path.name
