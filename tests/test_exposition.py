"""The exposition: whole-exporter output against a golden file, promtool, OpenMetrics, gzip, the metrics table."""

from __future__ import annotations

import dataclasses
import gzip
import platform
import re
import subprocess
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.exposition import doc, metrics
from exporter.exposition.cache import Exposition, Variant
from exporter.exposition.text import escape_label, format_value
from exporter.fakes.nvml import h100_node
from exporter.model import Snapshot
from exporter.poll.poller import Poller
from exporter.sources.gpu import GpuSource
from tests.conftest import fixture_text, require_tool
from tests.helpers import Clock, gpu_loops_once, scripted_server

GOLDEN = Path(__file__).parent / "golden" / "exporter.prom"
METRICS_DOC = Path(__file__).parent.parent / "docs" / "metrics.md"


async def fixture_snapshot() -> Snapshot:
    """A deterministic snapshot: the recorded vLLM body plus a synthetic one, 8 fake H100s, virtual time."""
    clock = Clock()
    nvml = h100_node(clock, load=lambda _t: 0.25, seed="golden")
    recorded = fixture_text("servers", "vllm-0.33.0-reconstructed.prom")
    config = Config(
        poll_interval=5.0,
        rate_window=30.0,
        gpu=GpuConfig("true"),
        pricing=PricingConfig(gpu_hourly_cost={"default": 2.5, "NVIDIA H100 80GB HBM3": 3.0}, energy_cost_per_kwh=0.1),
    )
    refused = ServerConfig("down", "http://127.0.0.1:9/metrics", "vllm", (6,), timeout=1.0)
    async with scripted_server(recorded) as qwen, scripted_server() as steady, aiohttp.ClientSession() as session:
        servers = (
            ServerConfig("qwen", qwen.url, "vllm", (0, 1), timeout=1.0),
            ServerConfig("steady", steady.url, "vllm", (2, 3, 4, 5), timeout=1.0),
            refused,
        )
        poller = Poller(
            dataclasses.replace(config, servers=servers),
            session=session,
            gpu_source=GpuSource(nvml=nvml),
            clock=clock,
            wall=lambda: 1_700_000_000.0,
        )
        for step in range(4):
            steady.body = (
                f'vllm:generation_tokens_total{{model_name="llama"}} {step * 5000.0}\n'
                f'vllm:request_success_total{{model_name="llama"}} {step * 20.0}\n'
            )
            await gpu_loops_once(poller)
            await poller.poll_servers()
            clock.advance(5.0)
            nvml.gpus[7].lost = True  # lost after the first read, so its UUID is known
        return poller.snapshot()


def normalize(text: str) -> str:
    """Remove what differs between machines: the Python version."""
    return text.replace(f'python_version="{platform.python_version()}"', 'python_version="X"')


@pytest.mark.asyncio
async def test_the_whole_output_matches_the_golden_file(update_golden: bool) -> None:
    body = normalize(Exposition(await fixture_snapshot()).body(Variant(False, False)).decode())
    if update_golden:
        GOLDEN.write_text(body, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run pytest --update-golden, then review and commit it"
    assert body == GOLDEN.read_text(encoding="utf-8"), "run pytest --update-golden and review the diff"


@pytest.mark.asyncio
async def test_promtool_check_metrics_finds_nothing_to_complain_about() -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    body = Exposition(await fixture_snapshot()).body(Variant(False, False))
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""


@pytest.mark.asyncio
async def test_the_text_and_openmetrics_forms_parse_and_carry_the_same_samples() -> None:
    exposition = Exposition(await fixture_snapshot())
    text = exposition.body(Variant(False, False)).decode()
    om = exposition.body(Variant(True, False)).decode()
    assert om.endswith("# EOF\n")
    text_samples = {(s.name, tuple(sorted(s.labels.items())), s.value) for f in parse_text(text) for s in f.samples}
    om_samples = {(s.name, tuple(sorted(s.labels.items())), s.value) for f in parse_openmetrics(om) for s in f.samples}
    assert text_samples == om_samples
    families = {f.name: f.type for f in parse_openmetrics(om)}
    assert families["inference_generation_tokens"] == "counter"
    assert families["inference_gpu"] == "info"
    assert families["inference_time_to_first_token_seconds"] == "histogram"


@pytest.mark.asyncio
async def test_gzip_bodies_decompress_to_the_plain_ones_and_are_cached() -> None:
    exposition = Exposition(await fixture_snapshot())
    for openmetrics in (False, True):
        zipped = exposition.body(Variant(openmetrics, True))
        assert gzip.decompress(zipped) == exposition.body(Variant(openmetrics, False))
        assert exposition.body(Variant(openmetrics, True)) is zipped


@pytest.mark.asyncio
async def test_a_down_server_keeps_only_up_duration_and_last_success() -> None:
    text = Exposition(await fixture_snapshot()).body(Variant(False, False)).decode()
    down = sorted({line.split("{")[0] for line in text.splitlines() if 'server="down"' in line})
    assert down == ["inference_server_gpus", "inference_server_poll_duration_seconds", "inference_server_up"]
    assert 'inference_server_up{server="down"} 0.0' in text


@pytest.mark.asyncio
async def test_a_lost_gpu_shows_up_zero_and_nothing_else() -> None:
    snapshot = await fixture_snapshot()
    text = Exposition(snapshot).body(Variant(False, False)).decode()
    lost_uuid = snapshot.lost_gpus[0][1]
    lines = [line for line in text.splitlines() if lost_uuid in line]
    assert lines == [f'inference_gpu_up{{gpu="7",uuid="{lost_uuid}"}} 0.0']


def test_values_and_labels_are_formatted_as_prometheus_expects() -> None:
    assert [format_value(v) for v in (1.0, 0.5, float("inf"), float("-inf"), 1e21)] == [
        "1.0",
        "0.5",
        "+Inf",
        "-Inf",
        "1e+21",
    ]
    assert format_value(float("nan")) == "NaN"
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_metric_names_follow_prometheus_conventions() -> None:
    for metric in metrics.ALL:
        assert re.fullmatch(r"inference_[a-z0-9_]+", metric.name), metric.name
        assert metric.name.endswith("_total") == (metric.type == "counter"), metric.name
        assert metric.name.endswith("_info") == (metric.type == "info"), metric.name
        assert not {"instance", "job", "hostname", "cluster"} & set(metric.labels), metric.name
        assert metric.help.endswith(".") or metric.help.endswith(")"), metric.name
    assert len({m.name for m in metrics.ALL}) == len(metrics.ALL)


def test_readme_metrics_table_is_up_to_date() -> None:
    text = METRICS_DOC.read_text(encoding="utf-8")
    assert doc.replace_table(text) == text, "run: python -m exporter.exposition.doc --write docs/metrics.md"
