"""GPU faults: no NVML at all, a GPU lost mid-run, and NVML functions missing, each with a server that
keeps being served. The exporter runs as a real process on ``--gpu.simulate`` scenarios (the fake NVML
sits below the GPU module), except the last test, which needs a fake with every optional call gone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pynvml
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import Config, GpuConfig, ServerConfig
from exporter.demo.simulator import SimulatedVllm, simulated_app
from exporter.fakes.nvml import FakeNvml, h100_node
from exporter.serve.service import Service
from exporter.serve.web import WebSettings, build_app
from exporter.sources.gpu import GpuSource
from tests.helpers import ExporterProcess, background_loop, get, run_exporter, sample_value, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with background_loop() as loop:
        yield loop.serve(simulated_app(SimulatedVllm(model="m", swing=0.0))) + "/metrics"


def run_on(scenario: str, server_url: str, tmp_path: Path) -> Any:
    config = tmp_path / "config.yml"
    server = f"{{name: s, url: '{server_url}', gpus: [0, 1], timeout: 500ms}}"
    config.write_text(f"poll_interval: 1s\nrate_window: 10s\nservers:\n  - {server}\n", encoding="utf-8")
    return run_exporter(["--config.file", str(config), "--gpu.simulate", scenario], tmp_path)


def gpu_series(text: str, gpu: str) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("gpu") == gpu
    }


def test_without_nvml_the_gpus_are_down_once_and_servers_are_served(server_url: str, tmp_path: Path) -> None:
    with run_on("none", server_url, tmp_path) as run:
        text = run.metrics()  # ready: NVML and the server were polled once
        log = run.log()
    assert sample_value(text, "inference_nvml_up") == 0.0
    assert not [line for line in text.splitlines() if line.startswith("inference_gpu_")]
    assert sample_value(text, "inference_server_up", server="s") == 1.0
    assert log.count('"nvml_down"') == 1 and "Traceback" not in log


@pytest.mark.slow
def test_a_gpu_lost_mid_run_shows_up_0_alone_and_comes_back(server_url: str, tmp_path: Path) -> None:
    def gpu_up(run: ExporterProcess, gpu: str) -> float | None:
        return sample_value(run.metrics(), "inference_gpu_up", gpu=gpu)

    with run_on("lost", server_url, tmp_path) as run:
        assert gpu_up(run, "2") == 1.0
        wait_for(lambda: gpu_up(run, "2") == 0.0, 60, interval=0.5, what="GPU 2 lost (20 s into the scenario)")
        text = run.metrics()
        assert gpu_series(text, "2") <= {"inference_gpu_up"}
        for other in ("0", "1", "3"):
            assert sample_value(text, "inference_gpu_up", gpu=other) == 1.0
            assert sample_value(text, "inference_gpu_power_watts", gpu=other) is not None
        assert sample_value(text, "inference_nvml_up") == 1.0
        assert sample_value(text, "inference_server_up", server="s") == 1.0
        wait_for(lambda: gpu_up(run, "2") == 1.0, 90, interval=0.5, what="GPU 2 back (60 s into the scenario)")
        assert run.process.poll() is None
        log = run.log()
    assert '"gpu_lost"' in log and "Traceback" not in log


def test_an_old_driver_without_optional_functions_still_serves_every_gpu(server_url: str, tmp_path: Path) -> None:
    with run_on("old-driver", server_url, tmp_path) as run:

        def integrated() -> str | None:
            text = run.metrics()
            return text if sample_value(text, "inference_gpu_energy_joules_total", gpu="0") else None

        text = str(wait_for(integrated, 30, what="energy integrated from power"))
        log = run.log()
    assert sample_value(text, "inference_nvml_up") == 1.0
    assert sample_value(text, "inference_gpu_up", gpu="1") == 1.0
    assert "Traceback" not in log and '"level": "error"' not in log


# -- every optional NVML function missing, in-process --------------------------------------------------

CORE = {
    "nvmlInit",
    "nvmlInitWithFlags",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
}


class BareNvml(FakeNvml):
    """The fake NVML with every function but the ones that find and name GPUs gone (``FunctionNotFound``)."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name.startswith("nvml") and name not in CORE and callable(value):
            return _missing
        return value


def _missing(*_args: object, **_kwargs: object) -> Any:
    raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)


def test_with_every_optional_nvml_function_missing_gpus_are_up_with_what_is_left(server_url: str) -> None:
    nvml = h100_node(time.monotonic, count=2)
    nvml.__class__ = BareNvml
    config = Config(
        poll_interval=0.5, rate_window=5.0, gpu=GpuConfig(enabled="true"), servers=(ServerConfig("s", server_url),)
    )
    service = Service(config, gpu_factory=lambda _c: GpuSource(nvml=nvml))
    with background_loop() as loop:
        base = loop.serve(build_app(service, WebSettings()))

        def read() -> str | None:
            status, body, _ = get(base + "/metrics")
            text = body.decode() if status == 200 else ""
            polled = sample_value(text, "inference_gpu_up", gpu="1") is not None
            return text if polled and sample_value(text, "inference_server_up", server="s") == 1.0 else None

        text = str(wait_for(read, 30, what="a GPU reading"))
    assert sample_value(text, "inference_nvml_up") == 1.0
    assert sample_value(text, "inference_gpu_up", gpu="0") == 1.0
    assert sample_value(text, "inference_gpu_up", gpu="1") == 1.0
    assert sample_value(text, "inference_gpu_power_watts", gpu="0") is None
    assert sample_value(text, "inference_server_up", server="s") == 1.0
