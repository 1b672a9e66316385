"""Deployments on one node: a disaggregated prefill/decode pair behind a frontend, with known truth.

The servers are loopback HTTP servers whose vLLM-format counters grow at chosen rates; the poller
runs its real iterations in virtual time over the fake NVML. The truth is written from those rates:

- the frontend sees every request once: 600 generated tokens/s, 1,200 prompt tokens/s, 3 requests/s;
- the prefill server processes the prompts (1,200 prompt tokens/s) and emits one token per request
  (3 tokens/s), and finishes nothing as far as the deployment is concerned;
- two decode servers generate 400 and 200 tokens/s and finish 2 and 1 requests/s, and also count the
  prompts they received (800 and 400 tokens/s);
- GPUs: prefill 2, decode 4 and 2, a worker entry 2 (a remote node's GPUs would be another exporter's):
  10 GPUs at 3.00/h (H100) with electricity at 0.12/kWh over the fake GPUs' power.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from exporter.config import Config, GpuConfig, PricingConfig, ServerConfig
from exporter.config.model import DeploymentConfig
from exporter.exposition.cache import PLAIN_TEXT, Exposition
from exporter.fakes.nvml import h100_node
from exporter.model import DeploymentView, Snapshot
from exporter.poll.poller import Poller
from exporter.sources.gpu import GpuSource
from tests.helpers import Clock, ScriptedServer, gpu_loops_once, scripted_server

PRICES = PricingConfig(gpu_hourly_cost={"default": 2.0, "NVIDIA H100 80GB HBM3": 3.0}, energy_cost_per_kwh=0.12)
MODEL = "llama"
RATES = {  # server → (generation tokens/s, prompt tokens/s, requests/s) of its counters
    "frontend": (600.0, 1200.0, 3.0),
    "prefill": (3.0, 1200.0, 0.0),
    "decode-a": (400.0, 800.0, 2.0),
    "decode-b": (200.0, 400.0, 1.0),
}
GPUS = {"prefill": (0, 1), "decode-a": (2, 3, 4, 5), "decode-b": (6, 7), "frontend": ()}
WORKER_GPUS = (8, 9)
DEPLOYMENT_GPUS = 10


def body(generated: float, prompt: float, requests: float) -> str:
    labels = f'model_name="{MODEL}"'
    return (
        f"vllm:generation_tokens_total{{{labels}}} {generated}\n"
        f"vllm:prompt_tokens_total{{{labels}}} {prompt}\n"
        f"vllm:request_success_total{{{labels}}} {requests}\n"
        f"vllm:num_requests_running{{{labels}}} 1\n"
    )


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def pd_config(urls: dict[str, str], **deployments: DeploymentConfig) -> Config:
    roles = {"frontend": "frontend", "prefill": "prefill", "decode-a": "decode", "decode-b": "decode"}
    servers = [
        ServerConfig(name, urls[name], kind="vllm", gpus=GPUS[name], deployment="pd", role=role, timeout=1.0)  # type: ignore[arg-type]
        for name, role in roles.items()
    ]
    servers.append(ServerConfig("remote-gpus", "", gpus=WORKER_GPUS, deployment="pd", role="worker"))
    return Config(
        poll_interval=5.0,
        rate_window=60.0,
        pricing=PRICES,
        gpu=GpuConfig("true"),
        servers=tuple(servers),
        deployments=deployments,
    )


async def run(poller: Poller, clock: Clock, servers: dict[str, ScriptedServer], rounds: int = 13) -> Snapshot:
    start = clock.now
    for _ in range(rounds):
        elapsed = clock.now - start
        for name, srv in servers.items():
            generated, prompt, requests = RATES[name]
            srv.body = body(generated * elapsed, prompt * elapsed, requests * elapsed)
        await gpu_loops_once(poller)
        await poller.poll_servers()
        clock.advance(5.0)
    return poller.snapshot()


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[dict[str, ScriptedServer]]:
    async with (
        scripted_server() as frontend,
        scripted_server() as prefill,
        scripted_server() as decode_a,
        scripted_server() as decode_b,
    ):
        yield {"frontend": frontend, "prefill": prefill, "decode-a": decode_a, "decode-b": decode_b}


def only(snapshot: Snapshot) -> DeploymentView:
    (deployment,) = snapshot.deployments
    return deployment


@pytest.mark.asyncio
async def test_a_prefill_decode_deployment_counts_every_request_once_over_all_its_gpus(
    session: aiohttp.ClientSession, upstreams: dict[str, ScriptedServer]
) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=10, load=lambda _t: 0.5)
    urls = {name: srv.url for name, srv in upstreams.items()}
    poller = Poller(pd_config(urls), session=session, gpu_source=GpuSource(nvml=nvml), clock=clock)
    snapshot = await run(poller, clock, upstreams)
    deployment = only(snapshot)
    rates = deployment.rates[MODEL]

    power = DEPLOYMENT_GPUS * (70 + 630 * 0.5)  # the fake H100's power at half load, per GPU
    cost = DEPLOYMENT_GPUS * 3.0 / 3600 + power * 0.12 / 3.6e6
    assert deployment.gpus == DEPLOYMENT_GPUS
    assert deployment.cost_per_second == pytest.approx(cost, rel=0.02)
    assert rates.generation_tokens_per_second == pytest.approx(600.0, rel=0.02)  # the frontend's, not 600 + 603
    assert rates.prompt_tokens_per_second == pytest.approx(1200.0, rel=0.02)  # not 1200 + 1200 + 1200
    assert rates.requests_per_second == pytest.approx(3.0, rel=0.02)
    assert rates.generation_tokens_per_second_per_gpu == pytest.approx(600.0 / DEPLOYMENT_GPUS, rel=0.02)
    assert rates.cost_per_request == pytest.approx(cost / 3.0, rel=0.02)
    # phases: prefill's 2 GPUs are prompt work, decode's 6 generation work; the worker's 2 (no phase of its
    # own) are spread over both in proportion, 2:6; nothing is idle (a request is always running)
    per_gpu = cost / DEPLOYMENT_GPUS
    prompt_cost, generation_cost = 2 * per_gpu * 10 / 8, 6 * per_gpu * 10 / 8
    assert rates.prompt_cost_per_million_tokens == pytest.approx(prompt_cost / 1200.0 * 1e6, rel=0.02)
    assert rates.generation_cost_per_million_tokens == pytest.approx(generation_cost / 600.0 * 1e6, rel=0.02)
    assert rates.energy_joules_per_token == pytest.approx(power / (1200.0 + 600.0), rel=0.02)


@pytest.mark.asyncio
async def test_without_a_frontend_the_decode_servers_count_and_prefill_never_does(
    session: aiohttp.ClientSession, upstreams: dict[str, ScriptedServer]
) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=10, load=lambda _t: 0.5)
    urls = {name: srv.url for name, srv in upstreams.items()}
    config = pd_config(urls)
    config = dataclasses.replace(config, servers=tuple(s for s in config.servers if s.role != "frontend"))
    del upstreams["frontend"]
    poller = Poller(config, session=session, gpu_source=GpuSource(nvml=nvml), clock=clock)
    rates = only(await run(poller, clock, upstreams)).rates[MODEL]
    assert rates.generation_tokens_per_second == pytest.approx(400.0 + 200.0, rel=0.02)  # decode only
    assert rates.prompt_tokens_per_second == pytest.approx(800.0 + 400.0, rel=0.02)
    assert rates.requests_per_second == pytest.approx(2.0 + 1.0, rel=0.02)
    assert rates.generation_tokens_per_second_per_gpu == pytest.approx(600.0 / DEPLOYMENT_GPUS, rel=0.02)


@pytest.mark.asyncio
async def test_the_exposition_serves_the_join_key_and_the_deployment_and_no_up_for_a_worker(
    session: aiohttp.ClientSession, upstreams: dict[str, ScriptedServer]
) -> None:
    clock = Clock()
    urls = {name: srv.url for name, srv in upstreams.items()}
    gpus = GpuSource(nvml=h100_node(clock, count=10))
    poller = Poller(pd_config(urls), session=session, gpu_source=gpus, clock=clock)
    text = Exposition(await run(poller, clock, upstreams, rounds=4)).body(PLAIN_TEXT).decode()
    roles = (("frontend", "frontend"), ("prefill", "prefill"), ("decode-a", "decode"), ("remote-gpus", "worker"))
    for name, role in roles:
        assert f'inference_server_deployment_info{{server="{name}",deployment="pd",role="{role}"}} 1.0' in text
    assert 'inference_deployment_gpus{deployment="pd"} 10.0' in text
    assert 'inference_deployment_generation_tokens_per_second_per_gpu{deployment="pd",model="llama"}' in text
    assert 'inference_server_up{server="remote-gpus"}' not in text
    assert 'inference_server_gpus{server="remote-gpus"} 2.0' in text
    assert 'inference_server_cost_per_second{server="remote-gpus"}' in text


@pytest.mark.asyncio
async def test_a_deployment_that_spans_nodes_is_left_to_the_fleet_rules(
    session: aiohttp.ClientSession, upstreams: dict[str, ScriptedServer]
) -> None:
    clock = Clock()
    urls = {name: srv.url for name, srv in upstreams.items()}
    config = pd_config(urls, pd=DeploymentConfig(spans_nodes=True))
    poller = Poller(config, session=session, gpu_source=GpuSource(nvml=h100_node(clock, count=10)), clock=clock)
    snapshot = await run(poller, clock, upstreams, rounds=3)
    assert snapshot.deployments == ()
    assert {s.deployment for s in snapshot.servers} == {"pd"}  # the join key is still served


BAD = """
servers:
  - {name: fe, url: "http://127.0.0.1:1/metrics", deployment: solo, role: frontend}
  - {name: p0, url: "http://127.0.0.1:2/metrics", deployment: pd, role: prefill, gpus: [0]}
  - {name: w0, url: "http://127.0.0.1:3/metrics", role: worker, gpus: [1], kind: vllm, deployment: pd}
  - {name: d0, url: "http://127.0.0.1:4/metrics", role: decode}
  - {name: w1, role: worker, deployment: remote}
  - {name: r0, url: "http://127.0.0.1:5/metrics", role: leader, deployment: pd}
deployments:
  ghost: {spans_nodes: true}
  pd: {spans_nodes: maybe}
"""
EXPECTED = [
    "servers[5].role: must be one of: engine, prefill, decode, frontend, worker",
    "deployments.pd.spans_nodes: must be true or false",
    "servers[2].url: a worker has no /metrics of its own (its head node's server has): remove url",
    "servers[2].kind: does not apply to a worker (it has no /metrics to poll)",
    "servers[3].role: decode only means something within a deployment: add deployment: NAME",
    "servers[4].gpus: a worker is GPUs of its deployment: list them, or gpus: auto with pod:",
    "servers[0].deployment: deployment 'solo' has a frontend but no engines",
    "servers[1].deployment: deployment 'pd' has prefill servers but no decode server",
    "servers[4].deployment: deployment 'remote' has only workers (GPUs without /metrics)",
    "deployments.ghost: no server belongs to this deployment",
]


def test_config_mistakes_about_deployments_exit_2_with_every_problem_and_its_path(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(BAD, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert len(lines) == len(EXPECTED), result.stderr
    for expected in EXPECTED:
        assert any(line.startswith(expected) for line in lines), (expected, result.stderr)
    assert "Traceback" not in result.stderr
