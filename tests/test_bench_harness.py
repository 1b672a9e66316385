"""The benchmark harness measures what it says: same series, same parse results, exact rates, real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web

from bench import parse, run, scrape
from bench.baseline import baseline_app
from bench.common import Row, percentile, table
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


@pytest.mark.asyncio
async def test_the_baseline_collector_serves_the_same_series_as_the_exporter() -> None:
    snapshot = await build_snapshot(2)
    service = Service(Config(), gpu_factory=lambda _config: None)
    service.publish(snapshot)
    runner = web.AppRunner(baseline_app(lambda: service.exposition.snapshot), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            baseline = await response.text()
    finally:
        await runner.cleanup()
    ours = service.exposition.body(Variant(False, False)).decode()
    assert "inference_time_to_first_token_seconds_bucket" in ours
    assert scrape.series(ours) == scrape.series(baseline)


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
        for path in ("/metrics", "/metrics?chunked=1"):
            command = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--path", path]
            process = await asyncio.create_subprocess_exec(
                *command, "--seconds", "0", "--least", "20", stdout=subprocess.PIPE
            )
            out, _ = await process.communicate()
            assert process.returncode == 0
            results.append(json.loads(out))
    finally:
        await runner.cleanup()
    assert [r["bytes"] for r in results] == [5000, 1000]
    assert all(len(r["latencies"]) == 20 and min(r["latencies"]) > 0 for r in results)
    assert hits == 2 * (20 + 3)  # three warm-up requests each


def test_the_runner_refuses_unknown_benchmarks_and_prints_one_table() -> None:
    with pytest.raises(SystemExit):
        run.main(["--only", "nonsense"])
    text = table([Row("b", "f", "1 ms", "10 ms", "10.0×", "≥ 5×", True), Row("b", "g", "x")])
    assert text.splitlines()[2] == "| b | f | 1 ms | 10 ms | 10.0× | ≥ 5× | yes |"
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
