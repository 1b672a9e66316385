"""The status page's routes over real HTTP on loopback: the page, its JSON and /metrics of one snapshot."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from exporter.config import Config, GpuConfig, ServerConfig
from exporter.exposition.cache import Variant
from exporter.serve.service import Service
from exporter.serve.status import CONTENT_SECURITY_POLICY, Links
from exporter.serve.web import WebSettings, build_app
from tests.conftest import fixture_text
from tests.helpers import async_wait_for, scripted_server
from tests.status_checks import (
    assert_every_series_is_shown,
    assert_figures_match,
    html_figures,
    json_figures,
    snapshot_time,
)
from tests.status_snapshots import T0, down, gpu, server, snapshot

CONFIG = Config(poll_interval=1.0, rate_window=30.0)


@pytest_asyncio.fixture
async def running() -> AsyncIterator[tuple[str, Service]]:
    """The real app on loopback, polling a server that serves a recorded vLLM body, GPUs off."""
    async with scripted_server(fixture_text("servers", "vllm-0.33.0-reconstructed.prom")) as upstream:
        config = Config(
            poll_interval=60.0,  # one poll during the test: the snapshot stays still
            gpu=GpuConfig("false"),
            servers=(ServerConfig("vllm", upstream.url, "vllm", (0,), timeout=5.0),),
        )
        service = Service(config)
        runner = web.AppRunner(build_app(service, WebSettings(telemetry_path="/custom/metrics")), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            await async_wait_for(lambda: service.ready, what="first poll")
            yield f"http://127.0.0.1:{runner.addresses[0][1]}", service
        finally:
            await runner.cleanup()


@pytest.mark.asyncio
async def test_the_routes_serve_the_page_and_json_of_the_snapshot_metrics_serves(
    running: tuple[str, Service],
) -> None:
    base, _service = running
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["Cache-Control"] == "no-store"
            page = await response.text()
        async with session.get(f"{base}/api/v1/status") as response:
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"
            status = await response.json()
        async with session.get(f"{base}/custom/metrics") as response:
            metrics_text = await response.text()
    assert status["taken_at_unix"] == snapshot_time(metrics_text)
    assert html_figures(page) == json_figures(status)
    assert_figures_match(json_figures(status), metrics_text, currency="USD")
    assert_every_series_is_shown(json_figures(status), metrics_text)
    assert '<a href="custom/metrics">Metrics</a>' in page
    assert 'data-api="api/v1/status"' in page


@pytest.mark.asyncio
async def test_the_page_and_json_are_gzipped_for_clients_that_accept_it(running: tuple[str, Service]) -> None:
    base, service = running
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for path in ("/", "/api/v1/status"):
            async with session.get(base + path, headers={"Accept-Encoding": "gzip"}) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                body = gzip.decompress(await response.read())
            assert body == (
                service.status_page.json()
                if path.startswith("/api")
                else service.status_page.html(Links(metrics="custom/metrics"))
            )


def test_a_telemetry_path_at_the_root_takes_the_place_of_the_status_page() -> None:
    app = build_app(Service(CONFIG), WebSettings(telemetry_path="/"))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    assert ("GET", "/") in routes
    assert ("GET", "/api/v1/status") in routes
    assert sum(1 for method, path in routes if (method, path) == ("GET", "/")) == 1


def test_publishing_a_snapshot_records_it_for_the_status_page() -> None:
    service = Service(dataclasses.replace(CONFIG, gpu=GpuConfig("false")))
    service.publish(
        snapshot(T0, servers=(server("llama", {"m": 1200.0}, waiting=3.0), down("broken")), gpus=(gpu(0), gpu(1)))
    )
    status = json.loads(service.status_page.json())
    assert status["taken_at_unix"] == T0
    assert_figures_match(json_figures(status), service.exposition.body(Variant(False, False)).decode(), "EUR")
