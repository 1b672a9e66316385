"""The benchmark harness measures what it says: same series, same parse results, exact rates, real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import bench.baseline as baseline_module
from bench import parse, run, scrape
from bench.baseline import PerSnapshot, baseline_app, cached_app
from bench.common import Row, percentile, table
from bench.daemon import Upstreams
from bench.snapshots import build_snapshot, gpus_of
from bench.upstream import Rate, vllm_template
from exporter.config import Config
from exporter.exposition.cache import Variant
from exporter.serve.service import Service
from exporter.sources.servers import vllm
from tests.helpers import Clock


def test_a_simulated_server_counts_exactly_the_rate_it_is_set_to_across_a_step() -> None:
    clock = Clock()
    rate = Rate(1000.0, clock)
    template = vllm_template(engines=1)
    before = vllm.ADAPTER.parse(template.render(rate.total()).decode()).models["Qwen/Qwen3-8B"]
    clock.advance(10.0)
    rate.set(3000.0)
    clock.advance(5.0)
    after = vllm.ADAPTER.parse(template.render(rate.total()).decode()).models["Qwen/Qwen3-8B"]
    assert after.generation_tokens is not None and before.generation_tokens is not None
    assert after.generation_tokens - before.generation_tokens == pytest.approx(1000.0 * 10 + 3000.0 * 5)
    assert after.prompt_tokens - before.prompt_tokens == pytest.approx(2 * 25_000.0)  # type: ignore[operator]


def test_both_recorded_engines_are_kept_by_default_and_one_on_request() -> None:
    two, one = vllm_template().render(0.0), vllm_template(engines=1).render(0.0)
    assert b'engine="1"' in two
    assert b'engine="1"' not in one
    assert len(one) < len(two)


def test_servers_are_spread_over_gpus_tensor_parallel_when_fewer_than_gpus() -> None:
    assert [gpus_of(i, 4, 8) for i in range(4)] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert gpus_of(9, 64, 8) == (1,)


def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def get_metrics(app: web.Application, headers: dict[str, str] | None = None) -> tuple[str, int]:
    """One GET of ``/metrics`` from ``app`` served on loopback: the body as text, and its size as sent."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers or {}) as response:
            return await response.text(), int(response.headers["Content-Length"])
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_both_baselines_serve_the_same_samples_as_the_exporter() -> None:
    snapshot = await build_snapshot(2)
    service = Service(Config(), gpu_factory=lambda _config: None)
    service.publish(snapshot)
    ours = service.exposition.body(Variant(False, False)).decode()
    assert "inference_time_to_first_token_seconds_bucket" in ours
    for app in (baseline_app, cached_app):
        text, _ = await get_metrics(app(lambda: service.exposition.snapshot))
        assert samples(text) == samples(ours), app.__name__
    assert scrape.series_of(ours) == {(name, labels) for name, labels, _ in samples(ours)}


@pytest.mark.asyncio
async def test_the_cached_baseline_encodes_once_per_snapshot_and_form(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = await build_snapshot(1), await build_snapshot(2)
    current = [first]
    encoded: list[str] = []
    real = baseline_module.choose_encoder

    def counting_choose(accept: str) -> tuple[Callable[[CollectorRegistry], bytes], str]:
        encoder, content_type = real(accept)

        def counting(registry: CollectorRegistry) -> bytes:
            encoded.append(content_type)
            return encoder(registry)

        return counting, content_type

    monkeypatch.setattr(baseline_module, "choose_encoder", counting_choose)
    app = web.Application()
    app.router.add_get("/metrics", PerSnapshot(lambda: current[0]).handle)
    openmetrics = {"Accept": "application/openmetrics-text", "Accept-Encoding": "identity"}
    for _ in range(3):
        await get_metrics(app, openmetrics)
    assert len(encoded) == 1, "one snapshot: encoded once for three scrapes"
    await get_metrics(app, {"Accept": "text/plain", "Accept-Encoding": "identity"})
    assert len(encoded) == 2, "the other format is encoded once too"
    current[0] = second
    text, size = await get_metrics(app, openmetrics)
    assert len(encoded) == 3 and 'server="server-001"' in text, "a new snapshot is encoded afresh"
    for _ in range(2):
        zipped_text, zipped = await get_metrics(app, {**openmetrics, "Accept-Encoding": "gzip"})
    assert len(encoded) == 3, "gzip compresses the bytes encoded already"
    assert zipped_text == text and zipped < size / 3


def test_a_swarm_splits_the_servers_between_processes_with_a_model_each() -> None:
    with Upstreams(5, processes=2, engines=1) as swarm:
        assert len(swarm.urls) == 5 == len(set(swarm.urls))
        models = set()
        for url in swarm.urls:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read().decode()
            models |= set(re.findall(r'model_name="([^"]+)"', body))
    assert models == {f"org/model-{i:04d}" for i in range(5)}


def test_the_parse_baseline_gives_identical_samples_and_is_slower() -> None:
    body = (parse.FIXTURES / "tgi-3.x.prom").read_text(encoding="utf-8")
    ours, baseline, same = parse.compare("tgi", body, repeats=3)
    assert same
    assert baseline > ours


def test_the_grown_vllm_body_holds_every_model_and_engine() -> None:
    body = parse.large_vllm_body(models=2, engines=3)
    sample = vllm.ADAPTER.parse(body)
    assert sorted(sample.models) == ["org/model-0", "org/model-1"]
    with parse.reading_with(parse.client_scan):
        assert vllm.ADAPTER.parse(body) == sample


@pytest.mark.asyncio
async def test_the_load_generator_times_keep_alive_requests_in_its_own_process() -> None:
    hits = 0

    async def metrics(request: web.Request) -> web.StreamResponse:
        nonlocal hits
        hits += 1
        if request.query.get("chunked"):
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b"a" * 1000)
            await response.write_eof()
            return response
        return web.Response(body=b"b" * 5000)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        results = []
        ways = [("/metrics",), ("/metrics?chunked=1",), ("/metrics", "--paced", "0.002")]
        ways.append(("/metrics", "--connections", "4"))
        for path, *flags in ways:
            command = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--path", path, *flags]
            process = await asyncio.create_subprocess_exec(
                *command, "--seconds", "0", "--least", "20", stdout=subprocess.PIPE
            )
            out, _ = await process.communicate()
            assert process.returncode == 0
            results.append(json.loads(out))
    finally:
        await runner.cleanup()
    assert [r["bytes"] for r in results] == [5000, 1000, 5000, 5000]
    assert all(len(r["latencies"]) >= 20 and min(r["latencies"]) > 0 for r in results)
    concurrent = len(results[3]["latencies"])
    assert concurrent <= 20 + 4, "each connection stops after the one that reaches the count"
    assert hits == 3 * (20 + 3) + concurrent + 4 * 3  # three warm-up requests per connection


def test_the_runner_refuses_unknown_benchmarks_and_prints_one_table() -> None:
    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense"])
    text = table([Row("b", "f", "1 ms", "10 ms", "10.0×", "≥ 5×", True), Row("b", "g", "x")])
    assert text.splitlines()[2] == "| b | f | 1 ms | 10 ms | 10.0× | ≥ 5× | yes |"
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
