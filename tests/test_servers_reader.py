"""Servers polled over real HTTP on loopback: side endpoints, `kind: auto`, and the caps on what is read."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from structlog.testing import capture_logs

from exporter.config import Config, ServerConfig
from exporter.exposition.families import families
from exporter.exposition.text import render
from exporter.poll.poller import Poller
from exporter.sources.upstream.fetch import UpstreamError, fetch_text
from exporter.sources.upstream.reader import REDETECT_POLLS, ServerReader
from tests.conftest import fixture_text
from tests.helpers import Clock, listen

MIB = 1024 * 1024


@contextlib.asynccontextmanager
async def loopback(routes: Mapping[str, web.StreamResponse | str | bytes]) -> AsyncIterator[str]:
    """Serve fixed answers per path on 127.0.0.1; yield the base URL."""

    async def handle(request: web.Request) -> web.StreamResponse:
        answer = routes.get(request.path)
        if answer is None:
            return web.Response(status=404, text="not found")
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="text/plain")
        if isinstance(answer, str):
            return web.Response(text=answer, content_type="text/plain")
        return answer

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = await listen(app)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def reader(session: aiohttp.ClientSession, url: str, **kw: object) -> ServerReader:
    max_series = int(kw.pop("max_series", 50_000))  # type: ignore[call-overload]
    config = ServerConfig(name="s", url=url, timeout=5.0, **kw)  # type: ignore[arg-type]
    return ServerReader(config, session, max_body_bytes=16 * MIB, max_series=max_series)


TGI_INFO = '{"model_id": "teknium/OpenHermes-2.5-Mistral-7B", "version": "3.3.5", "sha": "4d28897"}'


@pytest.mark.asyncio
async def test_tgi_is_named_and_versioned_by_its_info_endpoint(session: aiohttp.ClientSession) -> None:
    async with loopback({"/metrics": fixture_text("servers", "tgi-3.x.prom"), "/info": TGI_INFO}) as base:
        sample = await reader(session, f"{base}/metrics").poll()
    assert list(sample.models) == ["teknium/OpenHermes-2.5-Mistral-7B"]
    assert (sample.kind, sample.version) == ("tgi", "3.3.5")


@pytest.mark.asyncio
async def test_the_configured_model_name_wins_over_the_info_endpoint(session: aiohttp.ClientSession) -> None:
    async with loopback({"/metrics": fixture_text("servers", "tgi-3.x.prom"), "/info": TGI_INFO}) as base:
        sample = await reader(session, f"{base}/metrics", model="hermes").poll()
    assert list(sample.models) == ["hermes"]


@pytest.mark.asyncio
async def test_a_missing_info_endpoint_leaves_the_model_unnamed_and_the_server_up(
    session: aiohttp.ClientSession,
) -> None:
    async with loopback({"/metrics": fixture_text("servers", "tgi-3.x.prom")}) as base:
        sample = await reader(session, f"{base}/metrics").poll()
    assert list(sample.models) == [""]
    assert sample.models[""].generation_tokens == 3423


@pytest.mark.asyncio
async def test_nim_takes_its_version_from_the_version_endpoint(session: aiohttp.ClientSession) -> None:
    routes = {"/v1/metrics": fixture_text("servers", "nim-1.x-datadog-real.prom"), "/v1/version": '{"release":"1.0.0"}'}
    async with loopback(routes) as base:
        sample = await reader(session, f"{base}/v1/metrics").poll()
    assert (sample.kind, sample.version) == ("nim", "1.0.0")


@pytest.mark.asyncio
async def test_an_unrecognized_body_is_logged_and_marks_only_that_server_down(
    session: aiohttp.ClientSession,
) -> None:
    vllm_body = fixture_text("servers", "vllm-0.33.0-reconstructed.prom")
    routes = {"/garbage": "<html>Ollama is running</html>\n", "/vllm": vllm_body}
    async with loopback(routes) as base:
        config = Config(servers=(ServerConfig("bad", f"{base}/garbage"), ServerConfig("good", f"{base}/vllm")))
        poller = Poller(config, session=session, gpu_source=None, clock=Clock(), wall=lambda: 1.7e9)
        with capture_logs() as logs:
            await poller.poll_servers()
    text = render(families(poller.snapshot())).decode()
    assert 'inference_server_up{server="bad"} 0.0' in text
    assert 'inference_server_up{server="good"} 1.0' in text
    down = [entry for entry in logs if entry["event"] == "server_down"]
    assert [entry["server"] for entry in down] == ["bad"]
    assert "no adapter recognizes this body" in down[0]["error"]


@pytest.mark.asyncio
async def test_server_info_carries_kind_version_and_counting_moment(session: aiohttp.ClientSession) -> None:
    async with loopback({"/metrics": fixture_text("servers", "tgi-3.x.prom"), "/info": TGI_INFO}) as base:
        poller = Poller(Config(servers=(ServerConfig("tgi", f"{base}/metrics"),)), session=session, gpu_source=None)
        await poller.poll_servers()
    text = render(families(poller.snapshot())).decode()
    assert 'inference_server_info{server="tgi",kind="tgi",version="3.3.5",token_counting="at_completion"} 1.0' in text
    assert 'inference_generation_tokens_total{server="tgi",model="teknium/OpenHermes-2.5-Mistral-7B"} 3423.0' in text


def series_body(lines: int) -> str:
    filler = "".join(f'unrelated_metric{{i="{i}"}} 1\n' for i in range(lines))
    return filler + 'vllm:generation_tokens_total{model_name="m"} 5\n'


@pytest.mark.asyncio
async def test_the_series_cap_is_the_configured_one_above_and_below_the_default(
    session: aiohttp.ClientSession,
) -> None:
    async with loopback({"/metrics": series_body(60_000)}) as base:
        sample = await reader(session, f"{base}/metrics", max_series=70_000).poll()
        assert sample.models["m"].generation_tokens == 5
        with pytest.raises(UpstreamError, match=r"more than 1000 series \(max_series_per_server\)"):
            await reader(session, f"{base}/metrics", max_series=1000).poll()


class Streamer:
    """Streams ``total`` bytes of a valid-looking body in 1 MiB chunks and counts what it managed to send."""

    def __init__(self, total: int, announce_length: bool) -> None:
        self.total, self.announce_length, self.sent = total, announce_length, 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if self.announce_length:
            response.content_length = self.total
        await response.prepare(request)
        chunk = (b"# " + b"x" * 1021 + b"\n") * 1024
        with contextlib.suppress(ConnectionError):
            while self.sent < self.total:
                await response.write(chunk)
                self.sent += len(chunk)
        return response


@pytest.mark.asyncio
@pytest.mark.parametrize("announce_length", [True, False])
async def test_a_100_mib_body_is_refused_after_at_most_the_cap(
    session: aiohttp.ClientSession, announce_length: bool
) -> None:
    streamer = Streamer(100 * MIB, announce_length)
    app = web.Application()
    app.router.add_get("/metrics", streamer.handle)
    runner = await listen(app)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        with pytest.raises(UpstreamError, match="over the limit of 16777216"):
            await fetch_text(session, url, timeout=60.0, max_bytes=16 * MIB)
    finally:
        await runner.cleanup()
    assert streamer.sent < 48 * MIB  # the cap plus what socket buffers held: never the whole body


@pytest.mark.asyncio
async def test_a_body_that_is_not_utf8_is_an_upstream_error_with_its_byte_offset(
    session: aiohttp.ClientSession,
) -> None:
    async with loopback({"/metrics": b"vllm:x 1\n\xff\xfe garbage"}) as base:
        with pytest.raises(UpstreamError, match=r"is not UTF-8 \(byte 9\)"):
            await reader(session, f"{base}/metrics").poll()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("trtllm-serve-json-metrics-reconstructed.json", "point the exporter at /prometheus/metrics on the same port"),
        ("trtllm-serve-json-metrics-empty-real.json", "point the exporter at /prometheus/metrics on the same port"),
        ("vllm-production-stack-router-reconstructed.prom", "point the exporter at each vLLM engine's own /metrics"),
        ("mindie-server-gpustack-real-fragment.prom", "Huawei MindIE"),
    ],
)
async def test_a_refused_body_marks_only_that_server_down_with_its_reason_in_the_log(
    session: aiohttp.ClientSession, name: str, words: str
) -> None:
    refused = web.Response(
        body=fixture_text("servers", "refused", name).encode(),
        content_type="application/json" if name.endswith(".json") else "text/plain",
    )
    routes = {"/metrics": refused, "/vllm": fixture_text("servers", "vllm-0.33.0-reconstructed.prom")}
    async with loopback(routes) as base:
        config = Config(servers=(ServerConfig("refused", f"{base}/metrics"), ServerConfig("good", f"{base}/vllm")))
        poller = Poller(config, session=session, gpu_source=None, clock=Clock(), wall=lambda: 1.7e9)
        with capture_logs() as logs:
            await poller.poll_servers()
    text = render(families(poller.snapshot())).decode()
    assert 'inference_server_up{server="refused"} 0.0' in text
    assert 'inference_server_up{server="good"} 1.0' in text
    (down,) = [entry for entry in logs if entry["event"] == "server_down"]
    assert down["server"] == "refused" and words in down["error"] and "\n" not in down["error"]


@pytest.mark.asyncio
async def test_a_configured_kind_is_read_even_where_detection_would_refuse(session: aiohttp.ClientSession) -> None:
    body = fixture_text("servers", "refused", "mindie-server-gpustack-real-fragment.prom")
    async with loopback({"/metrics": body}) as base:
        sample = await reader(session, f"{base}/metrics", kind="nim").poll()
    assert (sample.kind, sample.models["qwen2.5-0.5b-instruct-mindie"].generation_tokens) == ("nim", 578)


SERVED = {
    "trtllm-serve-1.3-reconstructed.prom": ("/prometheus/metrics", "trtllm", "at_completion", "Qwen3-8B", 865),
    "dynamo-frontend-0.8-real.prom": ("/metrics", "dynamo", "incremental", "Qwen/Qwen3-0.6B", 300),
    "ray-vllm-v1-ray2.52-reconstructed.prom": ("/metrics", "vllm", "incremental", "qwen-0.5b", 200),
    "aphrodite-v1-reconstructed.prom": (
        "/metrics",
        "aphrodite",
        "incremental",
        "NousResearch/Meta-Llama-3.1-8B-Instruct",
        333,
    ),
}
"""Fixture → (path it is served at, kind, counting moment, model, generated tokens read off the body)."""


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(SERVED))
async def test_a_new_kind_is_detected_and_served_with_its_counting_moment(
    session: aiohttp.ClientSession, name: str
) -> None:
    path, kind, counting, model, generated = SERVED[name]
    async with loopback({path: fixture_text("servers", name)}) as base:
        poller = Poller(Config(servers=(ServerConfig("s", f"{base}{path}"),)), session=session, gpu_source=None)
        await poller.poll_servers()
    text = render(families(poller.snapshot())).decode()
    assert f'inference_server_info{{server="s",kind="{kind}",version="",token_counting="{counting}"}} 1.0' in text
    assert f'inference_generation_tokens_total{{server="s",model="{model}"}} {generated:.1f}' in text


@pytest.mark.asyncio
async def test_kind_auto_sees_a_server_of_another_kind_at_its_first_body_or_within_the_redetection(
    session: aiohttp.ClientSession,
) -> None:
    routes: dict[str, web.StreamResponse | str | bytes] = {"/metrics": fixture_text("servers", "tgi-3.x.prom")}
    async with loopback(routes) as base:
        polled = reader(session, f"{base}/metrics")
        assert (await polled.poll()).kind == "tgi"
        routes["/metrics"] = fixture_text("servers", "vllm-0.33.0-reconstructed.prom")
        assert (await polled.poll()).kind == "vllm"  # TGI's adapter does not claim it: detected again at once
        # Triton's vLLM backend re-exports vllm: families, so vLLM's own verdict still claims its body;
        # the whole detection, which asks Triton first, runs again within REDETECT_POLLS polls
        routes["/metrics"] = fixture_text("servers", "triton-vllm-backend-reconstructed.prom")
        kinds = [(await polled.poll()).kind for _ in range(REDETECT_POLLS)]
    assert kinds[-1] == "triton"
    assert set(kinds) <= {"vllm", "triton"} and kinds == sorted(kinds, key=lambda k: k == "triton")
