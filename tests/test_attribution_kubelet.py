"""Kubernetes attribution against a fake kubelet: a real gRPC pod-resources server on a Unix socket.

The fake kubelet serves ``v1.PodResourcesLister/List`` from the same generated stubs the exporter
uses, on a socket in a temporary directory; tests change its allocations, stop it and start it again.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from exporter.attribution.podresources import api_pb2, api_pb2_grpc
from exporter.config import Config, ServerConfig
from exporter.config.kubernetes import with_downward_api
from exporter.config.model import KubernetesConfig, PodSelector
from exporter.fakes.nvml import h100_node, mig_node
from tests.gpu_support import node, series, text_of, value
from tests.helpers import Clock

Pods = dict[tuple[str, str], dict[str, dict[str, list[str]]]]
"""(namespace, pod) → container → resource name → device IDs."""


@dataclass
class FakeKubelet(api_pb2_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    """The kubelet's pod-resources service, answering from ``pods``."""

    socket: str
    pods: Pods = field(default_factory=dict)
    calls: int = 0
    server: Any = None

    def List(self, request: Any, context: Any) -> Any:
        self.calls += 1
        response = api_pb2.ListPodResourcesResponse()
        for (namespace, name), containers in self.pods.items():
            pod = response.pod_resources.add(name=name, namespace=namespace)
            for container_name, resources in containers.items():
                container = pod.containers.add(name=container_name)
                for resource, ids in resources.items():
                    container.devices.add(resource_name=resource, device_ids=ids)
        return response

    def start(self) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self, self.server)
        self.server.add_insecure_port(f"unix://{self.socket}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait(10)


@pytest.fixture
def kubelet() -> Iterator[FakeKubelet]:
    directory = tempfile.mkdtemp(prefix="kl")  # short: Unix socket paths are limited to 107 bytes
    fake = FakeKubelet(str(Path(directory) / "kubelet.sock"))
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
        shutil.rmtree(directory)


def auto(name: str, pod: PodSelector | None = None) -> ServerConfig:
    return ServerConfig(name=name, url="", kind="vllm", gpus_auto=True, pod=pod, timeout=1.0)


def enabled(kubelet: FakeKubelet, **own: str) -> KubernetesConfig:
    return KubernetesConfig(enabled=True, socket=kubelet.socket, **own)


@pytest.mark.asyncio
async def test_pods_holding_gpus_label_them_and_a_pod_selector_attributes_its_server(kubelet: FakeKubelet) -> None:
    clock = Clock()
    nvml = h100_node(clock)
    uuids = [g.uuid for g in nvml.gpus]
    kubelet.pods = {
        ("llm", "vllm-7d9f-0"): {"vllm": {"nvidia.com/gpu": uuids[:4]}, "proxy": {}},
        ("llm", "qwen-5c2a"): {"engine": {"nvidia.com/gpu": [f"{uuids[4]}::0", f"{uuids[4]}::1"]}},
        ("batch", "job-1"): {"main": {"example.com/fpga": ["fpga0"], "nvidia.com/gpu": ["6"]}},
    }
    server = auto("llama", PodSelector(namespace="llm", name="vllm-*", container="vllm"))
    async with node(nvml, clock, [server], kubernetes=enabled(kubelet)) as n:
        await n.poller.refresh_kubelet()
        text = text_of(await n.rounds(2))
    pods = {
        (dict(k)["gpu"], dict(k)["namespace"], dict(k)["pod"], dict(k)["container"])
        for k in series(text, "inference_gpu_pod_info")
    }
    assert pods == {
        *((str(i), "llm", "vllm-7d9f-0", "vllm") for i in range(4)),
        ("4", "llm", "qwen-5c2a", "engine"),  # two time-slicing replicas of one GPU: one holder
        ("6", "batch", "job-1", "main"),  # a device plugin that hands out indices
    }
    assert value(text, "inference_kubelet_pod_resources_up") == 1.0
    assert value(text, "inference_server_gpus", server="llama") == 4.0
    assert value(text, "inference_server_attribution_info", server="llama", method="kubelet") == 1.0


@pytest.mark.asyncio
async def test_in_sidecar_mode_the_exporters_own_pod_gives_its_neighbours_gpus(kubelet: FakeKubelet) -> None:
    clock = Clock()
    nvml = h100_node(clock)
    kubelet.pods = {
        ("llm", "vllm-0"): {"vllm": {"nvidia.com/gpu": [g.uuid for g in nvml.gpus[4:]]}, "exporter": {}},
        ("llm", "vllm-1"): {"vllm": {"nvidia.com/gpu": [g.uuid for g in nvml.gpus[:4]]}, "exporter": {}},
    }
    config = with_downward_api(Config(kubernetes=enabled(kubelet)), {"POD_NAMESPACE": "llm", "POD_NAME": "vllm-0"})
    async with node(nvml, clock, [auto("sidecar")], kubernetes=config.kubernetes) as n:
        await n.poller.refresh_kubelet()
        snapshot = await n.rounds(2)
    assert [g.index for g in snapshot.servers[0].gpus] == [4, 5, 6, 7]


@pytest.mark.asyncio
async def test_the_kubelet_going_away_keeps_the_last_answer_and_coming_back_updates_it(kubelet: FakeKubelet) -> None:
    clock = Clock()
    nvml = h100_node(clock)
    kubelet.pods = {("llm", "vllm-0"): {"vllm": {"nvidia.com/gpu": [g.uuid for g in nvml.gpus[:2]]}}}
    server = auto("a", PodSelector(namespace="llm", name="vllm-0"))
    async with node(nvml, clock, [server], kubernetes=enabled(kubelet)) as n:
        await n.poller.refresh_kubelet()
        before = text_of(await n.rounds(1))
        kubelet.stop()
        await n.poller.refresh_kubelet()
        away = text_of(await n.rounds(1))
        kubelet.pods = {("llm", "vllm-0"): {"vllm": {"nvidia.com/gpu": [g.uuid for g in nvml.gpus[2:5]]}}}
        kubelet.start()
        await n.poller.refresh_kubelet()
        back = text_of(await n.rounds(1))
        status = n.poller.snapshot().kubelet
    assert value(before, "inference_server_gpus", server="a") == 2.0
    assert value(away, "inference_kubelet_pod_resources_up") == 0.0
    assert value(away, "inference_server_gpus", server="a") == 2.0  # nothing can be allocated while it is down
    assert len(series(away, "inference_gpu_pod_info")) == 2
    assert value(back, "inference_kubelet_pod_resources_up") == 1.0
    assert value(back, "inference_server_gpus", server="a") == 3.0
    assert status is not None and status.up and status.error is None


@pytest.mark.asyncio
async def test_scrapes_read_the_cached_answer_including_a_negative_one(kubelet: FakeKubelet) -> None:
    clock = Clock()
    nvml = h100_node(clock, count=2)
    server = auto("nowhere", PodSelector(namespace="llm", name="missing-*"))
    async with node(nvml, clock, [server], kubernetes=enabled(kubelet)) as n:
        await n.poller.refresh_kubelet()
        for _ in range(20):
            snapshot = n.poller.snapshot()
        text = text_of(await n.rounds(3))
    assert kubelet.calls == 1
    assert value(text, "inference_server_gpus", server="nowhere") == 0.0
    assert not series(text, "inference_gpu_pod_info")
    assert snapshot.kubelet is not None and snapshot.kubelet.up


@pytest.mark.asyncio
async def test_a_pod_holding_a_mig_instance_pays_that_instances_share(kubelet: FakeKubelet) -> None:
    clock = Clock()
    nvml = mig_node(clock)
    mig = nvml.gpus[0].mig
    assert mig is not None
    kubelet.pods = {("llm", "small-0"): {"engine": {"nvidia.com/mig-1g.10gb": [mig[2].uuid]}}}
    server = auto("small", PodSelector(namespace="llm", name="small-0"))
    async with node(nvml, clock, [server], kubernetes=enabled(kubelet)) as n:
        await n.poller.refresh_kubelet()
        snapshot = await n.rounds(2)
    text = text_of(snapshot)
    (share,) = snapshot.servers[0].gpus
    assert (share.index, share.mig_uuid) == (0, mig[2].uuid)
    assert share.weight == pytest.approx(mig[2].memory_total / nvml.gpus[0].memory_total)
    assert value(text, "inference_gpu_pod_info", pod="small-0", mig_uuid=mig[2].uuid) == 1.0


@pytest.mark.asyncio
async def test_a_missing_socket_marks_the_kubelet_down_with_the_reason() -> None:
    clock = Clock()
    missing = KubernetesConfig(enabled=True, socket="/nonexistent/kubelet.sock")
    async with node(h100_node(clock, count=1), clock, [auto("a", PodSelector(namespace="x"))], kubernetes=missing) as n:
        await n.poller.refresh_kubelet()
        snapshot = await n.rounds(1)
    assert snapshot.kubelet is not None and not snapshot.kubelet.up
    assert "UNAVAILABLE" in (snapshot.kubelet.error or "")
    assert snapshot.servers[0].gpus == ()
