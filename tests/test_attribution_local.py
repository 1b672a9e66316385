"""``gpus: auto`` on one host: real processes listen on loopback ports, and the fake NVML lists their PIDs.

Each "server" is a real process tree started here: a listener serving ``/metrics`` with worker
children (vLLM-like), a single process (llama.cpp-like), and a launcher whose router listens while a
sibling shard holds the GPU (TGI-like). The fake NVML lists those PIDs on GPUs, as the driver lists
host PIDs; the exporter finds each server from its port alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.attribution.attributor import Attributor
from exporter.attribution.local import LocalProcesses
from exporter.config import Config, ServerConfig
from exporter.fakes.nvml import FakeProcess, h100_node
from exporter.sources.gpu import GpuSource
from tests.gpu_support import node, series, text_of, value
from tests.helpers import Clock, free_port, http_get, wait_for

GIB = 1024**3
SERVE = r"""
import http.server, json, os, subprocess, sys
port, workers, opened = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
files = [open(path) for path in opened]  # held open, as a CUDA process holds /dev/nvidiaN
children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(workers)]
body = b'vllm:generation_tokens_total{model_name="m"} 100\n'

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(json.dumps({"pid": os.getpid(), "children": [c.pid for c in children]}), flush=True)
server.serve_forever()
"""
LAUNCHER = r"""
import json, os, subprocess, sys
router = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], "0"], stdout=subprocess.PIPE, text=True)
shard = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
json.loads(router.stdout.readline())
print(json.dumps({"pid": os.getpid(), "router": router.pid, "shard": shard.pid}), flush=True)
router.wait()
"""


@dataclasses.dataclass
class Started:
    """A process tree started by a test, with what it printed about itself."""

    process: subprocess.Popen[str]
    port: int
    info: dict[str, object]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def pids(self, key: str) -> list[int]:
        found = self.info[key]
        return found if isinstance(found, list) else [int(str(found))]


@pytest.fixture
def start() -> Iterator[object]:
    """Start process trees in their own session; kill each tree's group (by its id) afterwards."""
    started: list[subprocess.Popen[str]] = []

    def run(args: list[str]) -> Started:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-c", *args[:1], *[a.replace("PORT", str(port)) for a in args[1:]]],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/metrics", 2.0)[0] == 200, 30, what=f"port {port}")
        return Started(process, port, info)

    yield run
    for process in started:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def auto(name: str, url: str) -> ServerConfig:
    return ServerConfig(name=name, url=url, kind="vllm", gpus_auto=True, timeout=1.0)


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_gpus_auto_attributes_each_server_to_exactly_its_gpus_children_included(start) -> None:  # type: ignore[no-untyped-def]
    vllm = start([SERVE, "PORT", "4"])  # the API server and four TP workers
    llama = start([SERVE, "PORT", "0"])  # one process
    tgi = start([LAUNCHER, SERVE, "PORT"])  # launcher → router (listens) + shard (sibling, on the GPU)
    decoy = start([SERVE, "PORT", "1"])  # a GPU process that no configured server owns
    clock = Clock()
    nvml = h100_node(clock)
    for gpu, pid in zip(nvml.gpus[:4], vllm.pids("children"), strict=True):
        gpu.processes = [FakeProcess(pid, 70 * GIB)]
    nvml.gpus[4].processes = [FakeProcess(llama.pids("pid")[0], 20 * GIB)]
    nvml.gpus[5].processes = [FakeProcess(vllm.pids("pid")[0], 30 * GIB), FakeProcess(llama.pids("pid")[0], 10 * GIB)]
    nvml.gpus[6].processes = [FakeProcess(tgi.pids("shard")[0], 60 * GIB)]
    nvml.gpus[7].processes = [FakeProcess(decoy.pids("children")[0], 5 * GIB)]
    servers = [auto("vllm", vllm.url), auto("llama", llama.url), auto("tgi", tgi.url)]
    async with node(nvml, clock, servers) as n:
        snapshot = await n.rounds(2)
    text = text_of(snapshot)
    gpus = {s.name: {(g.index, round(g.weight, 6)) for g in s.gpus} for s in snapshot.servers}
    assert gpus == {
        "vllm": {(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (5, 0.75)},
        "llama": {(4, 1.0), (5, 0.25)},
        "tgi": {(6, 1.0)},
    }
    assert value(text, "inference_server_gpus", server="vllm") == 5.0
    assert value(text, "inference_server_gpus", server="tgi") == 1.0
    assert {dict(k)["method"] for k in series(text, "inference_server_attribution_info")} == {"processes"}
    assert value(text, "inference_server_gpu_memory_used_bytes", server="vllm") == 4 * 70 * GIB + 30 * GIB
    assert value(text, "inference_server_gpu_share_ratio", server="llama", gpu="5") == 0.25
    assert not [k for k in series(text, "inference_server_gpu_info") if dict(k)["gpu"] == "7"]


@pytest.mark.e2e
@pytest.mark.asyncio
async def test_a_server_that_moves_to_another_gpu_is_followed_on_the_next_slow_poll(start) -> None:  # type: ignore[no-untyped-def]
    srv = start([SERVE, "PORT", "1"])
    clock = Clock()
    nvml = h100_node(clock, count=2)
    worker = srv.pids("children")[0]
    nvml.gpus[0].processes = [FakeProcess(worker)]
    async with node(nvml, clock, [auto("a", srv.url)]) as n:
        first = await n.rounds(1)
        nvml.gpus[0].processes, nvml.gpus[1].processes = [], [FakeProcess(worker)]
        second = await n.rounds(1)
    assert [g.index for g in first.servers[0].gpus] == [0]
    assert [g.index for g in second.servers[0].gpus] == [1]


@pytest.mark.e2e
def test_outside_the_host_pid_namespace_the_open_device_files_name_the_gpus(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dev = tmp_path / "dev"
    dev.mkdir()
    for n in range(4):
        (dev / f"nvidia{n}").write_text("", encoding="utf-8")
    srv = start([SERVE, "PORT", "0", str(dev / "nvidia2"), str(dev / "nvidia3")])
    clock = Clock()
    nvml = h100_node(clock, count=4)
    host_pid = 4_000_000 + srv.pids("pid")[0]  # NVML reports host PIDs this process cannot see
    for gpu in nvml.gpus[2:]:
        gpu.processes = [FakeProcess(host_pid)]
    source = GpuSource(nvml=nvml)
    source.start()
    reading = source.read()
    config = Config(servers=(auto("a", srv.url),))
    attributor = Attributor(config, local=LocalProcesses(dev_dir=str(dev)))
    attributor.refresh_local(reading)
    (result,) = attributor.attributions(reading).values()
    assert result.method == "device_files"
    assert [c.key for c in result.claims] == [nvml.gpus[2].uuid, nvml.gpus[3].uuid]
    assert "hostPID" in result.note


def test_a_port_nobody_listens_on_or_another_host_gives_no_gpus_and_says_why() -> None:
    clock = Clock()
    source = GpuSource(nvml=h100_node(clock, count=1))
    source.start()
    reading = source.read()
    config = Config(
        servers=(auto("gone", f"http://127.0.0.1:{free_port()}/metrics"), auto("far", "http://192.0.2.7/m"))
    )
    attributor = Attributor(config)
    attributor.refresh_local(reading)
    result = attributor.attributions(reading)
    assert result["gone"].method == "none" and "listens on port" in result["gone"].note
    assert result["far"].method == "none" and "not an address of this host" in result["far"].note
