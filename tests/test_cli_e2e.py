"""The CLI as a real process: the demo, a known-rate server, bad configs, and broken upstreams."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.demo.simulator import SimulatedVllm, simulated_app
from exporter.exposition import metrics
from tests.fault_helpers import SilentServer, body_app
from tests.helpers import (
    EXPORTER,
    ExporterProcess,
    background_loop,
    free_port,
    http_get,
    run_exporter,
    sample_value,
    wait_for,
)

pytestmark = pytest.mark.e2e

CONTRACT = [
    "inference_server_up",
    "inference_prompt_tokens_total",
    "inference_generation_tokens_total",
    "inference_requests_finished_total",
    "inference_requests_running",
    "inference_requests_waiting",
    "inference_kv_cache_usage_ratio",
    "inference_prompt_tokens_per_second",
    "inference_generation_tokens_per_second",
    "inference_requests_per_second",
    "inference_generation_tokens_per_second_per_gpu",
    "inference_cost_per_request",
    "inference_cost_per_million_generation_tokens",
    "inference_energy_joules_per_generation_token",
    "inference_server_gpus",
    "inference_nvml_up",
    "inference_gpu_info",
    "inference_gpu_utilization_ratio",
    "inference_gpu_memory_used_bytes",
    "inference_gpu_memory_total_bytes",
    "inference_gpu_power_watts",
    "inference_gpu_temperature_celsius",
    "inference_gpu_hourly_cost",
    "inference_gpu_energy_joules_total",
    "inference_gpu_generation_tokens_per_second",
    "inference_pricing_info",
]


def present(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_the_demo_serves_every_contract_metric(tmp_path: Path) -> None:
    with run_exporter(["demo", "--seed", "3"], tmp_path) as exporter:
        names = wait_for(
            lambda: (p := present(exporter.metrics())) >= set(CONTRACT) and p,
            60,
            what="every contract metric in the demo",
        )
        assert set(CONTRACT) <= names  # type: ignore[operator]
        assert {m.name for m in metrics.ALL if m.type == "counter"} & names


@pytest.fixture
def steady_server() -> Iterator[tuple[SimulatedVllm, str]]:
    """A vLLM-format server whose generation counter grows at exactly 1200 tokens/s."""
    server = SimulatedVllm(model="steady-model", capacity=2000.0, base=0.6, swing=0.0)
    with background_loop() as loop:
        yield server, loop.serve(simulated_app(server)) + "/metrics"


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_per_gpu_rate_and_cost_per_request_match_the_known_truth(
    tmp_path: Path, steady_server: tuple[SimulatedVllm, str]
) -> None:
    server, url = steady_server
    true_rate, gpus = server.capacity * server.base, 4
    config = write_config(
        tmp_path,
        f"""
poll_interval: 1s
rate_window: 10s
pricing:
  gpu_hourly_cost: {{default: 1.0, "NVIDIA H100 80GB HBM3": 3.0}}
  energy_cost_per_kwh: 0.12
servers:
  - {{name: steady, url: "{url}", kind: vllm, gpus: [0, 1, 2, 3], timeout: 500ms}}
""",
    )
    with run_exporter(["--config.file", config, "--gpu.simulate", "h100x8"], tmp_path) as exporter:
        labels = {"server": "steady", "model": "steady-model"}

        def window_filled() -> str | None:
            text = exporter.metrics()
            return text if sample_value(text, "inference_cost_per_request", **labels) is not None else None

        wait_for(window_filled, 60, what="a derived cost per request")
        start = time.monotonic()
        wait_for(lambda: time.monotonic() - start > 10.5, 30)  # one full rate window after the first rate
        text = exporter.metrics()
    per_gpu = sample_value(text, "inference_generation_tokens_per_second_per_gpu", **labels)
    cost_per_request = sample_value(text, "inference_cost_per_request", **labels)
    idle_power = 4 * 70.0  # the simulated H100s are idle: 70 W each
    cost_per_second = gpus * 3.0 / 3600 + idle_power * 0.12 / 3.6e6
    requests_per_second = true_rate / server.tokens_per_request
    assert per_gpu == pytest.approx(true_rate / gpus, rel=0.02)
    assert cost_per_request == pytest.approx(cost_per_second / requests_per_second, rel=0.02)
    assert sample_value(text, "inference_server_gpus", server="steady") == 4


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXPORTER, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_a_bad_config_exits_2_and_lists_every_problem(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
poll_interval: soon
servers:
  - {name: a, url: "not a url"}
  - {name: b, url: "http://127.0.0.1:1/metrics", gpus: [x]}
""",
    )
    for extra in ([], ["--config.check"]):
        result = run_cli("--config.file", config, *extra)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "3 problem(s)" in result.stderr
        for problem in (
            "poll_interval: must be a duration",
            "servers[0].url: must be an http(s) URL",
            "servers[1].gpus: 'x' is neither",
        ):
            assert problem in result.stderr


def test_config_check_accepts_a_valid_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, "servers:\n  - {name: a, url: 'http://127.0.0.1:1/metrics'}\n")
    result = run_cli("--config.file", config, "--config.check")
    assert result.returncode == 0, result.stderr
    assert "configuration is valid (1 servers)" in result.stdout


def test_a_port_already_in_use_exits_1_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("--gpu.simulate", "none", "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "cannot_listen" in result.stderr and "Traceback" not in result.stderr


def scrape_latencies(exporter: ExporterProcess, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        status, _ = http_get(f"{exporter.base}/metrics")
        latencies.append(time.perf_counter() - start)
        assert status == 200
    return sorted(latencies)


def test_broken_upstreams_show_up_0_within_their_timeout_and_harm_nothing_else(
    tmp_path: Path, steady_server: tuple[SimulatedVllm, str]
) -> None:
    _, good_url = steady_server
    hanging = SilentServer()
    refused_port = free_port()
    with background_loop() as loop:
        garbage_url = loop.serve(body_app(bytes(range(256)) * 64, "application/octet-stream")) + "/metrics"
        config = write_config(
            tmp_path,
            f"""
poll_interval: 1s
rate_window: 5s
servers:
  - {{name: good, url: "{good_url}", gpus: [0]}}
  - {{name: refused, url: "http://127.0.0.1:{refused_port}/metrics", timeout: 500ms}}
  - {{name: hanging, url: "http://127.0.0.1:{hanging.port}/metrics", timeout: 500ms}}
  - {{name: garbage, url: "{garbage_url}", timeout: 500ms}}
""".replace("gpus: [0]}", "gpus: [0], timeout: 500ms}"),
        )
        try:
            with run_exporter(["--config.file", config, "--gpu.simulate", "h100x8"], tmp_path) as exporter:
                text = exporter.metrics()  # ready: every server polled once, each within its timeout
                ups = {
                    s: sample_value(text, "inference_server_up", server=s)
                    for s in ("good", "refused", "hanging", "garbage")
                }
                assert ups == {"good": 1.0, "refused": 0.0, "hanging": 0.0, "garbage": 0.0}
                hanging_duration = sample_value(text, "inference_server_poll_duration_seconds", server="hanging")
                assert hanging_duration is not None and hanging_duration < 0.5 + 0.5
                latencies = scrape_latencies(exporter, 60)
                assert latencies[len(latencies) // 2] < 0.1, latencies
                assert latencies[-1] < 1.0, latencies
                wait_for(
                    lambda: sample_value(
                        exporter.metrics(),
                        "inference_generation_tokens_per_second",
                        server="good",
                        model="steady-model",
                    ),
                    30,
                    what="good server's rate",
                )
                log = exporter.log()
        finally:
            hanging.close()
    garbage_lines = [line for line in log.splitlines() if '"server": "garbage"' in line]
    assert garbage_lines and "is not UTF-8" in garbage_lines[0]
