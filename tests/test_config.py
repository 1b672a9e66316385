"""The configuration: defaults, every problem reported with its path, durations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, parse_duration
from tests.helpers import config_of, parse_config, read_config

FULL = """
poll_interval: 5s
rate_window: 60s
pricing:
  currency: USD
  gpu_hourly_cost:
    default: 2.50
    "NVIDIA H100 80GB HBM3": 3.00
  energy_cost_per_kwh: 0.12
gpu:
  enabled: auto
servers:
  - name: llama-70b
    url: http://127.0.0.1:8000/metrics
    kind: vllm
    gpus: [0, 1, 2, 3]
    model: null
    timeout: 2s
"""


def test_the_documented_example_config_loads_with_its_values() -> None:
    config = parse_config(FULL)
    assert config.poll_interval == 5.0
    assert config.rate_window == 60.0
    assert config.pricing.gpu_hourly_cost == {"default": 2.5, "NVIDIA H100 80GB HBM3": 3.0}
    assert config.pricing.energy_cost_per_kwh == 0.12
    assert config.gpu.enabled == "auto"
    (server,) = config.servers
    assert (server.name, server.kind, server.gpus, server.model, server.timeout) == (
        "llama-70b",
        "vllm",
        (0, 1, 2, 3),
        None,
        2.0,
    )


def test_an_empty_file_gives_the_defaults() -> None:
    assert parse_config("") == Config()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5.0), ("1m", 60.0), ("1h", 3600.0), ("1m30s", 90.0), ("1.5s", 1.5)],
)
def test_durations_accept_prometheus_style_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "5 s", "s", "5sec", "-5s", "", "1m foo"])
def test_durations_reject_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yml")
    return info.value.problems


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    found = problems(
        """
poll_interval: fast
pricing:
  currency: dollars
  gpu_hourly_cost: {"NVIDIA H100 80GB HBM3": -1}
servers:
  - name: a
    url: ftp://x/metrics
  - name: a
    url: http://127.0.0.1:1/metrics
    kind: nonsense
    gpus: [0, zero]
    timeout: 10s
  - url: http://127.0.0.1:2/metrics
colour: blue
"""
    )
    expected = [
        "colour: unknown key",
        "poll_interval: must be a duration",
        "pricing.currency: must be a three-letter currency code",
        'pricing.gpu_hourly_cost["NVIDIA H100 80GB HBM3"]: must not be negative',
        "pricing.gpu_hourly_cost: needs a default price",
        "servers[0].url: must be an http(s) URL",
        "servers[1].kind: must be one of: auto, ",
        "servers[1].gpus: 'zero' is neither a GPU index",
        "servers[2].name: is required",
        "servers[1].timeout: must be shorter than poll_interval",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in found), f"missing {start!r} in {found}"


def test_a_duplicate_server_name_is_a_problem() -> None:
    found = problems(
        """
servers:
  - {name: a, url: "http://127.0.0.1:1/metrics"}
  - {name: a, url: "http://127.0.0.1:2/metrics"}
"""
    )
    assert found == ["servers[1].name: 'a' is used by an earlier server"]


def test_a_rate_window_shorter_than_two_polls_is_a_problem() -> None:
    assert problems("poll_interval: 5s\nrate_window: 8s\n") == [
        "rate_window: must be at least twice poll_interval, or no rate has two points"
    ]


def test_invalid_yaml_names_the_line() -> None:
    (found,) = problems("servers:\n  - name: a\n   url: b\n")
    assert found.startswith("invalid YAML: line 3")


@pytest.mark.parametrize("value", ["[1, 1]", "[-1]", "[true]", "[GPU]", "0"])
def test_bad_gpu_lists_are_problems(value: str) -> None:
    (found,) = problems(f"servers:\n  - {{name: a, url: 'http://127.0.0.1:1/m', gpus: {value}}}\n")
    assert found.startswith("servers[0].gpus: ")


def test_gpus_accept_indices_and_uuids() -> None:
    config = parse_config("servers:\n  - {name: a, url: 'http://127.0.0.1:1/m', gpus: [0, GPU-5d8e-1a, MIG-abc-12]}\n")
    assert config.servers[0].gpus == (0, "GPU-5d8e-1a", "MIG-abc-12")


def test_a_missing_file_is_a_config_error(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        read_config(f"{tmp_path}/absent.yml")


def test_the_error_message_lists_the_source_and_each_problem() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("poll_interval: x\nrate_window: y\n", "my.yml")
    message = str(info.value)
    assert message.startswith("my.yml: 2 problem(s)")
    assert "  poll_interval: must be a duration" in message


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(["poll_interval", "rate_window", "pricing", "gpu", "servers", "max_body_bytes", "x"])


@given(st.dictionaries(keys, yaml_values, max_size=6))
def test_any_yaml_data_gives_a_config_or_a_config_error(data: dict[str, object]) -> None:
    try:
        config = config_of(data)
    except ConfigError as exc:
        assert exc.problems
        assert all(isinstance(p, str) and ": " in p for p in exc.problems)
    else:
        assert isinstance(config, Config)


def test_the_token_weights_default_to_four_and_zero() -> None:
    pricing = parse_config("").pricing
    assert (pricing.generation_token_weight, pricing.cached_prompt_token_weight) == (4.0, 0.0)


def test_the_token_weights_and_gpu_peaks_are_read() -> None:
    config = parse_config(
        "pricing: {gpu_hourly_cost: {default: 1}, generation_token_weight: 5, cached_prompt_token_weight: 0.1}\n"
        'gpu:\n  peak_flops:\n    "NVIDIA H100 80GB HBM3": 989.4e12\n    "NVIDIA L4": 1.21e+14\n'
    )
    assert (config.pricing.generation_token_weight, config.pricing.cached_prompt_token_weight) == (5.0, 0.1)
    assert config.gpu.peak_flops == {"NVIDIA H100 80GB HBM3": 989.4e12, "NVIDIA L4": 121e12}


def test_bad_token_weights_and_peaks_are_each_reported_with_their_path() -> None:
    found = problems(
        "pricing: {generation_token_weight: 0, cached_prompt_token_weight: 1.5}\n"
        'gpu:\n  peak_flops: {"NVIDIA H100 80GB HBM3": -1, "NVIDIA L4": lots, "NVIDIA A10": .nan}\n'
    )
    assert found == [
        "pricing.generation_token_weight: must be above zero",
        "pricing.cached_prompt_token_weight: must be from 0 to 1",
        'gpu.peak_flops["NVIDIA H100 80GB HBM3"]: must be above zero (dense BF16 FLOP/s per GPU, such as 989.4e12)',
        'gpu.peak_flops["NVIDIA L4"]: must be a number (dense BF16 FLOP/s per GPU, such as 989.4e12)',
        'gpu.peak_flops["NVIDIA A10"]: must be a number (dense BF16 FLOP/s per GPU, such as 989.4e12)',
    ]
    assert problems("gpu: {peak_flops: [1, 2]}\n") == [
        "gpu.peak_flops: must be a mapping of GPU product name to dense BF16 FLOP/s, such as 989.4e12"
    ]
