"""Hot reload in-process: the poller keeps what a reload leaves alone, the service swaps configs, the endpoint.

The poller runs in virtual time against loopback servers; the service runs for real, with a config
file that the test rewrites between reloads, behind the real web app on a loopback port.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from structlog.testing import capture_logs

from exporter.config import Config, GpuConfig, ServerConfig
from exporter.exposition.cache import Variant
from exporter.fakes.nvml import h100_node
from exporter.poll.poller import Poller
from exporter.serve.service import Service
from exporter.serve.web import WebSettings, build_app
from exporter.sources.gpu import GpuSource
from tests.helpers import (
    Clock,
    ScriptedServer,
    async_wait_for,
    gpu_loops_once,
    read_config,
    sample_value,
    scripted_server,
)


def vllm_body(generated: float) -> str:
    return (
        f'vllm:generation_tokens_total{{model_name="m"}} {generated}\n'
        f'vllm:request_success_total{{model_name="m"}} {generated / 100}\n'
    )


def server(name: str, url: str, timeout: float = 1.0, gpus: tuple[int | str, ...] = ()) -> ServerConfig:
    return ServerConfig(name=name, url=url, kind="vllm", gpus=gpus, timeout=timeout)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def rounds(poller: Poller, clock: Clock, servers: list[ScriptedServer], start: int, count: int) -> None:
    """Poll ``count`` times, 5 virtual seconds apart, every counter growing at 200 tokens/s."""
    for step in range(start, start + count):
        for srv in servers:
            srv.body = vllm_body(step * 1000.0)
        await gpu_loops_once(poller)
        await poller.poll_servers()
        clock.advance(5.0)


def generation_rate(poller: Poller, name: str) -> float | None:
    view = next(s for s in poller.snapshot().servers if s.name == name)
    rates = view.rates.get("m")
    return rates.generation_tokens_per_second if rates is not None else None


# -- the poller --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_reconfigured_poller_keeps_unchanged_servers_windows_and_forgets_removed_ones(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    async with scripted_server() as a, scripted_server() as b, scripted_server() as c:
        old = Config(poll_interval=5.0, rate_window=60.0, servers=(server("a", a.url), server("b", b.url)))
        poller = Poller(old, session=session, gpu_source=None, clock=clock, wall=lambda: 1.7e9)
        await rounds(poller, clock, [a, b, c], 0, 3)
        assert generation_rate(poller, "a") == pytest.approx(200.0)

        new = dataclasses.replace(old, servers=(server("a", a.url, timeout=2.0), server("c", c.url)))
        poller.reconfigure(new, None)

        snapshot = poller.snapshot()
        assert [s.name for s in snapshot.servers] == ["a", "c"]
        assert generation_rate(poller, "a") == pytest.approx(200.0), "a's window survived the reload"
        assert not snapshot.ready, "c has not been polled yet"
        await rounds(poller, clock, [a, b, c], 3, 1)
        assert generation_rate(poller, "a") == pytest.approx(200.0)
        assert generation_rate(poller, "c") is None, "one point is no rate: c started afresh"
        assert poller.snapshot().servers[1].status.up
        assert b.hits == 3, "a removed server is no longer polled"


@pytest.mark.asyncio
async def test_a_server_given_a_new_url_under_the_same_name_starts_afresh(session: aiohttp.ClientSession) -> None:
    clock = Clock()
    async with scripted_server() as a, scripted_server() as elsewhere:
        old = Config(poll_interval=5.0, rate_window=60.0, servers=(server("a", a.url),))
        poller = Poller(old, session=session, gpu_source=None, clock=clock, wall=lambda: 1.7e9)
        await rounds(poller, clock, [a, elsewhere], 0, 3)
        poller.reconfigure(dataclasses.replace(old, servers=(server("a", elsewhere.url),)), None)
        assert generation_rate(poller, "a") is None
        assert poller.snapshot().servers[0].status.error == "not polled yet"


@pytest.mark.asyncio
async def test_the_gpu_state_survives_a_reload_with_the_same_source_and_not_with_a_new_one(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    source = GpuSource(nvml=h100_node(clock, count=2, seed="reload"))
    async with scripted_server() as a:
        old = Config(
            poll_interval=5.0, rate_window=60.0, gpu=GpuConfig("true"), servers=(server("a", a.url, gpus=(0,)),)
        )
        poller = Poller(old, session=session, gpu_source=source, clock=clock, wall=lambda: 1.7e9)
        await rounds(poller, clock, [a], 0, 3)
        poller.reconfigure(dataclasses.replace(old, servers=(server("a", a.url, gpus=(0, 1)),)), source)
        kept = poller.snapshot()
        assert len(kept.gpus) == 2 and kept.servers[0].power_watts is not None
        assert len(kept.servers[0].gpus) == 2, "the new GPU list applies at once"

        poller.reconfigure(old, GpuSource(nvml=h100_node(clock, count=2, seed="other")))
        assert poller.snapshot().gpus == (), "a new source has read nothing yet"


# -- the service behind the web app ------------------------------------------------------------


def config_text(servers: dict[str, str], *, poll: str = "1s") -> str:
    lines = [f"poll_interval: {poll}", "rate_window: 5s", "gpu: {enabled: false}", "servers:"]
    for name, url in servers.items():
        lines += [f"  - name: {name}", f"    url: {url}", "    kind: vllm", "    timeout: 900ms"]
    return "\n".join(lines) + "\n"


INVALID = """poll_interval: soon
servers:
  - name: alpha
    url: ftp://nowhere/metrics
    colour: blue
"""
INVALID_PROBLEMS = (
    "poll_interval: must be a duration such as 500ms, 5s or 1m",
    "servers[0].url: must be an http(s) URL",
    "servers[0].colour: unknown key",
)


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[dict[str, ScriptedServer]]:
    async with (
        scripted_server(vllm_body(10.0)) as a,
        scripted_server(vllm_body(20.0)) as b,
        scripted_server(vllm_body(30.0)) as c,
    ):
        yield {"alpha": a, "beta": b, "gamma": c}


class Running:
    """A service started behind the web app on 127.0.0.1, its config file, and a client."""

    def __init__(self, service: Service, path: Path, base: str, client: aiohttp.ClientSession) -> None:
        self.service, self.path, self.base, self.client = service, path, base, client

    def metrics(self) -> str:
        return self.service.exposition.body(Variant(False, False)).decode()

    def up(self, name: str) -> float | None:
        return sample_value(self.metrics(), "inference_server_up", server=name)

    async def post_reload(self) -> tuple[int, str]:
        async with self.client.post(self.base + "/-/reload") as response:
            return response.status, await response.text()


@pytest_asyncio.fixture
async def running(tmp_path: Path, upstreams: dict[str, ScriptedServer]) -> AsyncIterator[Running]:
    path = tmp_path / "config.yml"
    path.write_text(config_text({n: upstreams[n].url for n in ("alpha", "beta")}), encoding="utf-8")
    service = Service(read_config(path), gpu_factory=lambda _c: None, config_loader=lambda: read_config(path))
    runner = web.AppRunner(build_app(service, WebSettings(enable_lifecycle=True)), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as client:
            state = Running(service, path, f"http://127.0.0.1:{runner.addresses[0][1]}", client)
            await async_wait_for(lambda: state.up("alpha") == 1 and state.up("beta") == 1, what="both servers up")
            yield state
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_post_reload_adds_and_removes_servers(running: Running, upstreams: dict[str, ScriptedServer]) -> None:
    started = sample_value(running.metrics(), "inference_config_last_reload_success_timestamp_seconds")
    assert sample_value(running.metrics(), "inference_config_last_reload_successful") == 1
    running.path.write_text(config_text({n: upstreams[n].url for n in ("alpha", "gamma")}), encoding="utf-8")

    status, text = await running.post_reload()

    assert (status, text) == (200, "reloaded; servers added: gamma; removed: beta\n")
    assert running.up("beta") is None, "a removed server's series disappear at once"
    await async_wait_for(lambda: running.up("gamma") == 1, what="gamma polled")
    assert sample_value(running.metrics(), "inference_server_up", server="alpha") == 1
    assert sample_value(running.metrics(), "inference_config_last_reload_successful") == 1
    assert sample_value(running.metrics(), "inference_config_last_reload_success_timestamp_seconds") >= started  # type: ignore[operator]
    assert running.service.ready


@pytest.mark.asyncio
async def test_post_reload_of_an_invalid_config_keeps_the_old_one_and_lists_every_problem(
    running: Running, upstreams: dict[str, ScriptedServer]
) -> None:
    before = sample_value(running.metrics(), "inference_config_last_reload_success_timestamp_seconds")
    hits = upstreams["beta"].hits
    running.path.write_text(INVALID, encoding="utf-8")

    with capture_logs() as logs:
        status, text = await running.post_reload()

    assert status == 500
    for problem in INVALID_PROBLEMS:
        assert problem in text
    failed = [entry for entry in logs if entry["event"] == "config_reload_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error"
    assert len(failed[0]["problems"]) == 3
    for problem in INVALID_PROBLEMS:
        assert any(p.startswith(problem) for p in failed[0]["problems"]), problem
    text = running.metrics()
    assert sample_value(text, "inference_config_last_reload_successful") == 0
    assert sample_value(text, "inference_config_last_reload_success_timestamp_seconds") == before
    assert running.service.config.poll_interval == 1.0
    await async_wait_for(lambda: upstreams["beta"].hits > hits + 1, what="the old config still polling beta")
    assert running.up("alpha") == 1 and running.up("beta") == 1


@pytest.mark.asyncio
async def test_a_good_reload_after_a_bad_one_sets_the_metric_back_to_1(running: Running) -> None:
    good = running.path.read_text(encoding="utf-8")
    running.path.write_text("servers: 5\n", encoding="utf-8")
    assert (await running.post_reload())[0] == 500
    running.path.write_text(good, encoding="utf-8")
    assert (await running.post_reload())[0] == 200
    assert sample_value(running.metrics(), "inference_config_last_reload_successful") == 1


@pytest.mark.asyncio
async def test_reloading_an_unchanged_config_keeps_polling_undisturbed(running: Running) -> None:
    task = running.service._task
    with capture_logs() as logs:
        status, text = await running.post_reload()
    assert (status, text) == (200, "reloaded; servers added: none; removed: none\n")
    assert running.service._task is task, "nothing to change, so the poll loop was not restarted"
    assert [e["changed"] for e in logs if e["event"] == "config_reloaded"] == [False]


@pytest.mark.asyncio
async def test_a_missing_config_file_is_a_failed_reload_not_a_crash(running: Running) -> None:
    running.path.unlink()
    status, text = await running.post_reload()
    assert status == 500 and "cannot read the file" in text
    assert sample_value(running.metrics(), "inference_config_last_reload_successful") == 0
    assert running.up("alpha") == 1


@pytest.mark.asyncio
async def test_without_the_lifecycle_flag_post_reload_is_forbidden_and_changes_nothing() -> None:
    service = Service(Config(), gpu_factory=lambda _c: None)
    runner = web.AppRunner(build_app(service, WebSettings()), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as client:
            async with client.post(base + "/-/reload") as response:
                assert response.status == 403
                assert "--web.enable-lifecycle" in await response.text()
            async with client.get(base + "/-/reload") as response:
                assert response.status == 405
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_turning_gpus_off_and_on_by_reload_closes_nvml_and_opens_it_again(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("poll_interval: 500ms\nrate_window: 5s\ngpu: {enabled: true}\n", encoding="utf-8")
    nvml = h100_node(Clock(), count=2, seed="toggle")
    made: list[GpuSource] = []

    def factory(config: Config) -> GpuSource | None:
        if config.gpu.enabled == "false":
            return None
        made.append(GpuSource(nvml=nvml))
        return made[-1]

    service = Service(read_config(path), gpu_factory=factory, config_loader=lambda: read_config(path))
    await service.start()
    try:

        def text() -> str:
            return service.exposition.body(Variant(False, False)).decode()

        await async_wait_for(lambda: sample_value(text(), "inference_nvml_up") == 1, what="NVML read")
        path.write_text("poll_interval: 500ms\nrate_window: 5s\ngpu: {enabled: false}\n", encoding="utf-8")
        assert (await service.reload()).ok
        assert sample_value(text(), "inference_nvml_up") is None and not nvml.initialized
        path.write_text("poll_interval: 500ms\nrate_window: 5s\ngpu: {enabled: true}\n", encoding="utf-8")
        assert (await service.reload()).ok
        await async_wait_for(lambda: sample_value(text(), "inference_gpu_up", gpu="1") == 1, what="NVML again")
        assert len(made) == 2
    finally:
        await service.stop()
