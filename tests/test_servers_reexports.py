"""vLLM's and SGLang's families as other stacks serve them: Ray Serve, several API servers, Aphrodite."""

from __future__ import annotations

from exporter.sources.servers import detect, get_adapter

vllm = get_adapter("vllm").parse
sglang = get_adapter("sglang").parse

RAY = 'Component="core_worker",NodeAddress="10.0.0.12",SessionName="s"'


def test_ray_worker_and_replica_labels_are_summed_away_per_model() -> None:
    body = (
        f'ray_vllm_generation_tokens_total{{{RAY},ReplicaId="a",WorkerId="w1",engine="0",model_name="m"}} 200.0\n'
        f'ray_vllm_generation_tokens_total{{{RAY},ReplicaId="b",WorkerId="w2",engine="0",model_name="m"}} 50.0\n'
        f'ray_vllm_num_requests_running{{{RAY},ReplicaId="a",WorkerId="w1",engine="0",model_name="m"}} 1.0\n'
        f'ray_vllm_num_requests_running{{{RAY},ReplicaId="b",WorkerId="w2",engine="0",model_name="m"}} 2.0\n'
    )
    values = vllm(body).models["m"]
    assert (values.generation_tokens, values.requests_running) == (200 + 50, 1 + 2)
    assert detect(body).kind == "vllm"


def test_a_counter_ray_has_not_exported_yet_counts_zero() -> None:
    # Ray exports a counter only once it has moved: an idle replica shows its gauges alone
    values = vllm(f'ray_vllm_num_requests_running{{{RAY},WorkerId="w",engine="0",model_name="m"}} 0.0\n').models["m"]
    assert (values.prompt_tokens, values.generation_tokens, values.requests_finished) == (0, 0, 0)


def test_the_older_ray_spelling_keeps_the_colon() -> None:
    body = f'ray_vllm:prompt_tokens_total{{{RAY},WorkerId="w",model_name="m"}} 58.0\n'
    assert vllm(body).models["m"].prompt_tokens == 58
    assert detect(body).kind == "vllm"


def test_a_body_with_vllm_s_own_families_is_read_with_them_alone() -> None:
    body = 'vllm:generation_tokens_total{model_name="m"} 5\nray_vllm_generation_tokens_total{model_name="m"} 7\n'
    assert vllm(body).models["m"].generation_tokens == 5


def test_sglang_under_ray_is_read_with_its_worker_labels_summed_away() -> None:
    body = (
        'ray_sglang_prompt_tokens_total{WorkerId="tokenizer",model_name="m"} 33.0\n'
        'ray_sglang_num_running_reqs{WorkerId="scheduler",model_name="m",tp_rank="0"} 2.0\n'
    )
    values = sglang(body).models["m"]
    assert (values.prompt_tokens, values.requests_running, values.generation_tokens) == (33, 2, 0)
    assert detect(body).kind == "sglang"


def test_a_kv_cache_gauge_per_api_server_process_is_its_one_real_value_not_the_sum() -> None:
    # as pasted in vllm-project/vllm PR #28792 (eight API servers; one holds the engine's value)
    pids = {"277": 0.0, "275": 0.0, "273": 0.6530455880475035, "271": 0.0, "272": 0.0, "276": 0.0, "274": 0.0}
    body = "".join(
        f'vllm:kv_cache_usage_perc{{engine="0",model_name="Qwen/Qwen3-VL-8B-Instruct",pid="{pid}"}} {value}\n'
        for pid, value in {**pids, "278": 0.0}.items()
    )
    assert vllm(body).models["Qwen/Qwen3-VL-8B-Instruct"].kv_cache_usage_ratio == 0.6530455880475035


def test_aphrodite_reads_vllm_s_families_under_its_own_prefix() -> None:
    body = (
        'aphrodite:generation_tokens_total{engine="0",model_name="m"} 333.0\n'
        'aphrodite:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5\n'
    )
    sample = get_adapter("aphrodite").parse(body)
    assert (sample.kind, sample.models["m"].generation_tokens, sample.models["m"].kv_cache_usage_ratio) == (
        "aphrodite",
        333,
        0.5,
    )
    assert detect(body).kind == "aphrodite"
