"""The GPU and attribution configuration keys: defaults, ``gpus: auto``, pod selectors, and every problem reported."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, checks
from exporter.config.kubernetes import with_downward_api
from exporter.config.model import DEFAULT_KUBELET_SOCKET, PodSelector
from tests.helpers import parse_config


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


def test_gpu_cadences_default_to_one_and_ten_seconds_with_xid_on_and_gpm_off() -> None:
    config = parse_config("servers: []\n")
    assert (config.gpu.fast_interval, config.gpu.slow_interval) == (1.0, 10.0)
    assert config.gpu.xid_events and not config.gpu.gpm
    assert not config.kubernetes.enabled and config.kubernetes.socket == DEFAULT_KUBELET_SOCKET


def test_gpus_auto_and_a_pod_selector_parse() -> None:
    config = parse_config(
        "kubernetes: {enabled: true, refresh_interval: 15s}\n"
        "gpu: {fast_interval: 500ms, slow_interval: 5s, gpm: true, xid_events: false}\n"
        "servers:\n"
        "  - {name: a, url: 'http://127.0.0.1:8000/metrics', gpus: auto, pod: {namespace: llm, name: 'vllm-*'}}\n"
        "  - {name: b, url: 'http://127.0.0.1:8001/metrics', gpus: auto, pod: {container: engine}}\n"
        "  - {name: c, url: 'http://127.0.0.1:8002/metrics', gpus: [0, 'MIG-1a2b']}\n"
    )
    a, b, c = config.servers
    assert a.gpus_auto and a.gpus == () and a.pod == PodSelector("llm", "vllm-*", "")
    assert b.pod == PodSelector("", "*", "engine")
    assert not c.gpus_auto and c.gpus == (0, "MIG-1a2b")
    assert config.gpu.fast_interval == 0.5 and config.gpu.gpm and not config.gpu.xid_events
    assert config.kubernetes.refresh_interval == 15.0


def test_every_gpu_and_attribution_problem_is_reported_with_its_path() -> None:
    found = problems(
        "gpu: {fast_interval: 20ms, slow_interval: 1s, gpm: yes please, extra: 1}\n"
        "kubernetes: {socket: kubelet.sock, enabled: 1}\n"
        "servers:\n"
        "  - {name: a, url: 'http://x:1/m', gpus: all}\n"
        "  - {name: b, url: 'http://x:1/m', gpus: auto, pod: {namespace: llm, nmae: x}}\n"
        "  - {name: c, url: 'http://x:1/m', gpus: [1], pod: {namespace: llm}}\n"
        "  - {name: d, url: 'http://x:1/m', gpus: auto, pod: {name: x}}\n"
    )
    keys = "enabled, fast_interval, gpm, peak_flops, slow_interval, xid_events"
    assert f"gpu.extra: unknown key (expected one of: {keys})" in found
    assert "gpu.fast_interval: must be at least 100ms" in found
    assert "gpu.gpm: must be true or false" in found
    assert "kubernetes.socket: must be an absolute path" in found
    assert "kubernetes.enabled: must be true or false" in found
    assert "servers[0].gpus: must be auto or a list of GPU indices or UUIDs" in found
    assert any(p.startswith("servers[1].pod: unknown key 'nmae'") for p in found)
    assert "servers[2].pod: only applies with gpus: auto" in found
    assert "servers[2].pod: needs kubernetes.enabled: true" in found
    assert any(p.startswith("servers[3].pod: name needs a namespace") for p in found)


def test_cadences_that_contradict_each_other_are_problems() -> None:
    found = problems("rate_window: 10s\npoll_interval: 1s\ngpu: {fast_interval: 6s, slow_interval: 2s}\n")
    assert "gpu.slow_interval: must not be shorter than gpu.fast_interval" in found
    assert "rate_window: must be at least twice gpu.fast_interval, or no energy rate has two points" in found


def test_kubernetes_without_the_optional_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "grpc_installed", lambda: False)
    (problem,) = problems("kubernetes: {enabled: true}\n")
    assert problem == (
        "kubernetes.enabled: needs the kubernetes extra, which is not installed: "
        "pip install 'inference-throughput-exporter[kubernetes]'"
    )


def test_the_downward_api_names_the_exporters_own_pod_unless_the_file_does() -> None:
    config = parse_config("kubernetes: {enabled: true}\n")
    env = {"POD_NAMESPACE": "llm", "POD_NAME": "vllm-0"}
    assert with_downward_api(config, env).kubernetes.own_pod == ("llm", "vllm-0")
    assert with_downward_api(config, {}).kubernetes.own_pod is None
    named = parse_config("kubernetes: {enabled: true, pod_namespace: a, pod_name: b}\n")
    assert with_downward_api(named, env).kubernetes.own_pod == ("a", "b")
