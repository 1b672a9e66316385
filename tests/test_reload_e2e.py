"""Hot reload and systemd notification with the exporter running as a real process.

SIGHUP and ``POST /-/reload`` each get a valid new config (one server added, one removed) and then an
invalid one (the old config keeps running, the metric drops to 0, every problem is logged). The
``$NOTIFY_SOCKET`` test listens on a real Unix datagram socket, as systemd does.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.demo.simulator import SimulatedVllm, simulated_app
from tests.helpers import ExporterProcess, background_loop, notify_listener, run_exporter, sample_value, wait_for

pytestmark = pytest.mark.e2e

INVALID = """poll_interval: 500ms
rate_window: 900ms
servers:
  - name: alpha
    url: not-a-url
    kind: vllm
"""
INVALID_PROBLEMS = (
    "servers[0].url: must be an http(s) URL",
    "servers[0].timeout: must be shorter than poll_interval",
    "rate_window: must be at least twice poll_interval",
)


def config_text(servers: dict[str, str]) -> str:
    lines = ["poll_interval: 1s", "rate_window: 5s", "gpu: {enabled: false}", "servers:"]
    for name, url in servers.items():
        lines += [f"  - name: {name}", f"    url: {url}", "    kind: vllm", "    timeout: 900ms"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, str]]:
    """Three vLLM-format servers on loopback, by name."""
    with background_loop() as loop:
        yield {
            name: loop.serve(simulated_app(SimulatedVllm(model=f"{name}-model", capacity=1000.0, swing=0.0)))
            + "/metrics"
            for name in ("alpha", "beta", "gamma")
        }


def up(exporter: ExporterProcess, name: str) -> float | None:
    return sample_value(exporter.metrics(), "inference_server_up", server=name)


def reload_metrics(exporter: ExporterProcess) -> tuple[float | None, float | None]:
    text = exporter.metrics()
    return (
        sample_value(text, "inference_config_last_reload_successful"),
        sample_value(text, "inference_config_last_reload_success_timestamp_seconds"),
    )


def last_success(exporter: ExporterProcess, name: str) -> float:
    value = sample_value(exporter.metrics(), "inference_server_last_success_timestamp_seconds", server=name)
    return value if value is not None else 0.0


def log_events(exporter: ExporterProcess, event: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in exporter.log().splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry.get("event") == event]


def post_reload(exporter: ExporterProcess) -> tuple[int, str]:
    request = urllib.request.Request(exporter.base + "/-/reload", method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sighup(exporter: ExporterProcess) -> None:
    exporter.process.send_signal(signal.SIGHUP)


def check_valid_then_invalid_reload(exporter: ExporterProcess, path: Path, urls: dict[str, str], trigger) -> None:  # type: ignore[no-untyped-def]
    wait_for(lambda: up(exporter, "alpha") == 1 and up(exporter, "beta") == 1, what="alpha and beta up")
    assert reload_metrics(exporter)[0] == 1
    first_success = reload_metrics(exporter)[1]

    path.write_text(config_text({"alpha": urls["alpha"], "gamma": urls["gamma"]}), encoding="utf-8")
    trigger(exporter)
    wait_for(lambda: up(exporter, "gamma") == 1 and up(exporter, "beta") is None, what="gamma added, beta removed")
    assert up(exporter, "alpha") == 1
    ok, second_success = reload_metrics(exporter)
    assert ok == 1 and second_success > first_success  # type: ignore[operator]
    assert log_events(exporter, "config_reloaded")[-1]["added"] == ["gamma"]

    path.write_text(INVALID, encoding="utf-8")
    trigger(exporter)
    wait_for(lambda: reload_metrics(exporter)[0] == 0, what="inference_config_last_reload_successful 0")
    assert reload_metrics(exporter)[1] == second_success
    failed = wait_for(lambda: log_events(exporter, "config_reload_failed"), what="the failure logged")
    problems = failed[-1]["problems"]  # type: ignore[index]
    for problem in INVALID_PROBLEMS:
        assert any(p.startswith(problem) for p in problems), (problem, problems)
    polled_at = last_success(exporter, "gamma")
    wait_for(lambda: last_success(exporter, "gamma") > polled_at, what="the previous config still polling gamma")
    assert up(exporter, "alpha") == 1 and up(exporter, "beta") is None
    assert exporter.process.poll() is None


def test_sighup_reloads_a_valid_config_and_keeps_the_old_one_on_an_invalid_one(
    tmp_path: Path, upstreams: dict[str, str]
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(config_text({"alpha": upstreams["alpha"], "beta": upstreams["beta"]}), encoding="utf-8")
    with run_exporter(["--config.file", str(path)], tmp_path) as exporter:
        check_valid_then_invalid_reload(exporter, path, upstreams, sighup)
        assert len(log_events(exporter, "sighup_received")) == 2


def test_post_reload_reloads_a_valid_config_and_reports_an_invalid_one(
    tmp_path: Path, upstreams: dict[str, str]
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(config_text({"alpha": upstreams["alpha"], "beta": upstreams["beta"]}), encoding="utf-8")
    answers: list[tuple[int, str]] = []
    with run_exporter(["--config.file", str(path), "--web.enable-lifecycle"], tmp_path) as exporter:
        check_valid_then_invalid_reload(exporter, path, upstreams, lambda e: answers.append(post_reload(e)))
    assert answers[0] == (200, "reloaded; servers added: gamma; removed: beta\n")
    assert answers[1][0] == 500
    for problem in INVALID_PROBLEMS:
        assert problem in answers[1][1]


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    with notify_listener(timeout=30) as bound:
        yield bound


def receive(sock: socket.socket) -> dict[str, str]:
    fields = sock.recv(4096).decode().split("\n")
    return dict(field.split("=", 1) for field in fields)


def test_systemd_is_told_ready_reloading_and_stopping(
    tmp_path: Path, upstreams: dict[str, str], notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    config = tmp_path / "config.yml"
    config.write_text(config_text({"alpha": upstreams["alpha"]}), encoding="utf-8")
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    with run_exporter(["--config.file", str(config)], tmp_path, ready_path="/-/healthy") as exporter:
        assert receive(sock) == {"READY": "1", "STATUS": "polling 1 server(s)"}
        sighup(exporter)
        reloading = receive(sock)
        assert reloading["RELOADING"] == "1"
        assert 0 < int(reloading["MONOTONIC_USEC"]) <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert receive(sock) == {"READY": "1", "STATUS": "polling 1 server(s)"}
        config.write_text("servers: [\n", encoding="utf-8")
        sighup(exporter)
        assert receive(sock)["RELOADING"] == "1"
        assert receive(sock)["STATUS"] == "polling 1 server(s); last reload failed, previous configuration kept"
        exporter.process.send_signal(signal.SIGTERM)
        assert receive(sock) == {"STOPPING": "1", "STATUS": "shutting down"}
        assert exporter.process.wait(30) == 0
