"""Every loop survives an unexpected error: it is logged and counted, what it owns is marked down, and
stopping and reloading still work afterwards.

The service runs for real (its loops, its publish loop) against a loopback server, with short
intervals; each step waits on a condition, never on a sleep. Faults are injected below the loops:
``compose`` raises on chosen calls (a derive or rendering bug), and the kubelet client raises an error
that is not ``KubeletUnavailable`` (a bug in the gRPC layer, say).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter.attribution.kubelet import PodResourcesClient
from exporter.attribution.resolve import ContainerDevice
from exporter.config import Config, GpuConfig, KubernetesConfig, ServerConfig
from exporter.exposition.cache import PLAIN_TEXT
from exporter.model import Snapshot
from exporter.poll import compose as compose_module
from exporter.poll import poller as poller_module
from exporter.poll.supervise import Supervisor
from exporter.serve.service import Service
from tests.helpers import ScriptedServer, async_wait_for, scripted_server


def body(generated: float) -> str:
    labels = '{model_name="m"}'
    return f"vllm:generation_tokens_total{labels} {generated}\nvllm:request_success_total{labels} 1\n"


class BrokenKubelet(PodResourcesClient):
    """A kubelet client whose every call fails with an error the attribution code does not expect."""

    def __init__(self, socket_path: str) -> None:
        self.calls = 0

    def list_devices(self) -> tuple[ContainerDevice, ...]:
        self.calls += 1
        raise RuntimeError("protobuf: unexpected wire type")

    def close(self) -> None:
        pass


class FlakyCompose:
    """``compose`` that raises on the calls in ``failing`` (counted from 1) and composes otherwise."""

    def __init__(self, real: Callable[[compose_module.Inputs], Snapshot], failing: set[int]) -> None:
        self.real, self.failing, self.calls = real, failing, 0

    def __call__(self, inputs: compose_module.Inputs) -> Snapshot:
        self.calls += 1
        if self.calls in self.failing:
            raise ZeroDivisionError("float division by zero")
        return self.real(inputs)


def config(url: str) -> Config:
    return Config(
        poll_interval=0.2,
        rate_window=2.0,
        gpu=GpuConfig("false"),
        servers=(ServerConfig("a", url, kind="vllm", timeout=0.15),),
        kubernetes=KubernetesConfig(enabled=True, socket="/nonexistent/kubelet.sock", refresh_interval=0.2),
    )


def server_of(service: Service) -> Any:
    return next(s for s in service.exposition.snapshot.servers if s.name == "a")


def errors(service: Service) -> dict[str, int]:
    return dict(service.exposition.snapshot.loop_errors)


def served(service: Service) -> str:
    return service.exposition.body(PLAIN_TEXT).decode()


async def grow(srv: ScriptedServer, until: Callable[[], object], what: str) -> None:
    """Keep the upstream's counter moving until ``until`` holds."""

    def step() -> object:
        srv.body = body(srv.hits * 100.0)
        return until()

    await async_wait_for(step, timeout=60.0, what=what)


@pytest.mark.asyncio
async def test_a_failing_compose_and_kubelet_are_counted_survived_and_never_served_as_fresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flaky = FlakyCompose(compose_module.compose, failing={5})
    monkeypatch.setattr(compose_module, "compose", flaky)
    async with scripted_server(body(0.0)) as srv:
        first = config(srv.url)
        second = dataclasses.replace(first, servers=(*first.servers, ServerConfig("b", srv.url, timeout=0.15)))
        service = Service(first, gpu_factory=lambda _c: None, kubelet=BrokenKubelet, config_loader=lambda: second)
        degraded: list[Snapshot] = []
        publish = service.publish_in_slices

        async def record(snapshot: Snapshot) -> None:
            if any(s.status.error and "composing the snapshot" in s.status.error for s in snapshot.servers):
                degraded.append(snapshot)
            await publish(snapshot)

        service.publish_in_slices = record  # type: ignore[method-assign]
        with capture_logs() as logs:
            await service.start()
            try:
                recovered = lambda: errors(service).get("publish") == 1 and server_of(service).status.up  # noqa: E731
                await grow(srv, recovered, "recovery from the failed compose")
                hits = srv.hits
                await grow(srv, lambda: srv.hits >= hits + 3, "the server loop polling on")
                assert server_of(service).sample is not None and server_of(service).rates["m"] is not None

                (failed,) = degraded
                (a,) = failed.servers
                assert not a.status.up and a.sample is None and not a.rates  # marked down, nothing stale
                assert "ZeroDivisionError: float division by zero" in (a.status.error or "")
                assert failed.kubelet is not None and not failed.kubelet.up

                kubelet = service.exposition.snapshot.kubelet
                assert kubelet is not None and not kubelet.up
                assert "internal error: RuntimeError: protobuf: unexpected wire type" in (kubelet.error or "")
                await async_wait_for(lambda: errors(service).get("kubelet", 0) >= 2, what="the kubelet loop retrying")

                srv.status = 500
                await async_wait_for(lambda: not server_of(service).status.up, what="a real failure shown as up 0")
                srv.status = 200
                await grow(srv, lambda: server_of(service).status.up, "back up")

                result = await service.reload()
                assert result.ok and result.added == ("b",)
                await grow(srv, lambda: all(s.status.up for s in service.exposition.snapshot.servers), "both up")
            finally:
                await service.stop()
    text = served(service)
    assert 'inference_exporter_loop_errors_total{loop="publish"} 1.0' in text
    assert 'inference_exporter_loop_errors_total{loop="servers"} 0.0' in text
    failures = [e for e in logs if e["event"] == "loop_failed"]
    assert {e["loop"] for e in failures} == {"publish", "kubelet"}
    assert sum(1 for e in failures if e["loop"] == "kubelet") == 1  # logged once per state change, not per try
    assert any(e["event"] == "loop_recovered" and e["loop"] == "publish" for e in logs)


@pytest.mark.asyncio
async def test_a_server_loop_that_cannot_make_progress_marks_its_servers_down(monkeypatch: pytest.MonkeyPatch) -> None:
    async with scripted_server(body(0.0)) as srv:
        service = Service(config(srv.url), gpu_factory=lambda _c: None, kubelet=BrokenKubelet)
        await service.start()
        try:
            await grow(srv, lambda: server_of(service).status.up, "the server up")

            async def broken(*_args: object) -> None:
                raise RuntimeError("the event loop lost a task")

            monkeypatch.setattr(poller_module, "poll_server", broken)  # the per-server guard itself fails
            await async_wait_for(lambda: not server_of(service).status.up, what="the server marked down")
            assert "internal error in the server loop (RuntimeError: the event loop lost a task)" in (
                server_of(service).status.error or ""
            )
            assert server_of(service).sample is None
            await async_wait_for(lambda: errors(service).get("servers", 0) >= 2, what="errors counted per iteration")
            monkeypatch.undo()
            await grow(srv, lambda: server_of(service).status.up, "the server up again")
        finally:
            await service.stop()


@pytest.mark.asyncio
async def test_the_guard_lets_cancellation_through_and_survives_a_failing_failure_handler() -> None:
    supervisor = Supervisor()

    async def fails() -> None:
        raise ValueError("bad")

    def handler(_reason: str) -> None:
        raise KeyError("worse")

    assert await supervisor.iteration("servers", fails, handler) is False
    assert supervisor.errors == {"servers": 1}
    assert supervisor.failing("servers") == "ValueError: bad"

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await supervisor.iteration("servers", cancelled)
