"""Upstream faults against the exporter as a real process: one exporter polls a good server beside
servers that refuse, hang, drip, flood, send garbage, send NaN counters, restart, flap and fail TLS.

Each faulty server must show ``up 0`` with its reason (or, for bad values, the documented values),
``/metrics`` must keep answering in its usual time, and the good server's numbers must stay right.
(``tests/test_cli_e2e.py`` covers a plain refused port, a silent server and binary garbage too.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.demo.simulator import SimulatedVllm, simulated_app
from tests.certs import CertificateAuthority
from tests.fault_helpers import (
    Flapping,
    Restartable,
    SilentServer,
    app_with,
    body_app,
    drip_app,
    huge_app,
    server_context,
    vllm_body,
)
from tests.helpers import (
    BackgroundLoop,
    ExporterProcess,
    background_loop,
    free_port,
    listen,
    run_exporter,
    sample_value,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOWN_REASONS = {
    "refused": "cannot fetch",
    "silent": "no complete answer",
    "drip": "no complete answer",
    "flood-declared": "body of 104857600 bytes is over the limit of 16777216",
    "flood-chunked": "over the limit|no complete answer",
    "html": "no adapter recognizes",
    "invalid-utf8": "is not UTF-8",
    "tls-untrusted": "CERTIFICATE_VERIFY_FAILED",
    "tls-to-plain-http": "cannot fetch",
    "tls-client-cert-missing": "cannot fetch",
}
UP_SERVERS = ("good", "nonfinite", "tls-ca-file", "tls-insecure", "tls-server-name", "tls-client-cert")
ONLY_WHEN_DOWN = {
    "inference_server_up",
    "inference_server_poll_duration_seconds",
    "inference_server_last_success_timestamp_seconds",
    "inference_server_gpus",
    "inference_server_cost_per_second",
    "inference_server_power_watts",
}


@dataclass
class Node:
    """The running exporter and the upstreams it polls."""

    exporter: ExporterProcess
    loop: BackgroundLoop
    good: SimulatedVllm
    flapping: Flapping
    restartable: Restartable
    restart_port: int
    restart_runner: web.AppRunner
    started: float = field(default_factory=time.monotonic)


def tls_upstreams(loop: BackgroundLoop, directory: Path) -> dict[str, str]:
    """HTTPS upstreams: one signed by a CA the exporter does not know, one by name only, one wanting mTLS."""
    ca = CertificateAuthority("upstream CA")
    ca_file = ca.write(directory, "upstream-ca")
    cert, key = ca.server("localhost").write(directory, "upstream")
    named_cert, named_key = ca.server("upstream.internal", ips=()).write(directory, "named")
    ca.client("exporter").write(directory, "exporter-client")
    body = vllm_body(5000.0, model="tls").encode()
    plain = loop.serve(body_app(body), server_context(cert, key))
    named = loop.serve(body_app(body), server_context(named_cert, named_key))
    mutual = loop.serve(body_app(body), server_context(cert, key, client_ca=ca_file))
    untrusted_ca = CertificateAuthority("unknown CA")
    stranger = loop.serve(body_app(body), server_context(*untrusted_ca.server("localhost").write(directory, "x")))
    client = f"cert_file: {directory / 'exporter-client.crt'}, key_file: {directory / 'exporter-client.key'}"
    return {
        "tls-untrusted": f'url: "{stranger}/metrics"',
        "tls-ca-file": f'url: "{plain}/metrics", tls: {{ca_file: {ca_file}}}',
        "tls-insecure": f'url: "{stranger}/metrics", tls: {{insecure_skip_verify: true}}',
        "tls-server-name": f'url: "{named}/metrics", tls: {{ca_file: {ca_file}, server_name: upstream.internal}}',
        "tls-client-cert": f'url: "{mutual}/metrics", tls: {{ca_file: {ca_file}, {client}}}',
        "tls-client-cert-missing": f'url: "{mutual}/metrics", tls: {{ca_file: {ca_file}}}',
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    directory = tmp_path_factory.mktemp("faults")
    silent = SilentServer()
    good = SimulatedVllm(model="steady-model", capacity=2000.0, base=0.6, swing=0.0)
    flapping, restartable = Flapping(), Restartable()
    with background_loop() as loop:
        restart_runner: web.AppRunner = loop.run(listen(app_with(restartable.handle)))  # type: ignore[assignment]
        restart_port = restart_runner.addresses[0][1]

        def at(app: web.Application, scheme: str = "http") -> str:
            return f'url: "{loop.serve(app).replace("http:", scheme + ":")}/metrics"'

        latin1 = vllm_body(1.0, model="caf\xe9").encode("latin-1")
        urls = {
            "good": at(simulated_app(good)) + ", gpus: [0, 1, 2, 3]",
            "refused": f'url: "http://127.0.0.1:{free_port()}/metrics"',
            "silent": f'url: "http://127.0.0.1:{silent.port}/metrics"',
            "drip": at(drip_app()),
            "flood-declared": at(huge_app(declare=True)),
            "flood-chunked": at(huge_app()),
            "html": at(body_app(b"<html><body>It works!</body></html>", "text/html")) + ", kind: auto",
            "invalid-utf8": at(body_app(latin1)),
            "nonfinite": at(body_app(nonfinite_body())),
            "flap": at(app_with(flapping.handle)),
            "restart": f'url: "http://127.0.0.1:{restart_port}/metrics"',
            "tls-to-plain-http": at(body_app(vllm_body(1.0).encode()), scheme="https"),
            **tls_upstreams(loop, directory),
        }
        servers = "".join(
            f"  - {{name: {name}, timeout: 500ms, {spec}{'' if 'kind:' in spec else ', kind: vllm'}}}\n"
            for name, spec in urls.items()
        )
        config = directory / "config.yml"
        config.write_text(f"poll_interval: 1s\nrate_window: 10s\nservers:\n{servers}", encoding="utf-8")
        args = ["--config.file", str(config), "--gpu.simulate", "h100x8"]
        try:
            with run_exporter(args, directory) as running:
                yield Node(running, loop, good, flapping, restartable, restart_port, restart_runner)
        finally:
            silent.close()


def nonfinite_body() -> bytes:
    """A vLLM body whose generation counter is NaN, prompt counter +Inf and request counter negative."""
    return vllm_body(math.nan, model="odd", prompt=math.inf, requests=-5.0).encode()


def series_of(text: str, server: str) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("server") == server
    }


@pytest.mark.parametrize("name", sorted(DOWN_REASONS))
def test_a_faulty_upstream_shows_up_0_with_its_reason(node: Node, name: str) -> None:
    text = node.exporter.metrics()
    assert sample_value(text, "inference_server_up", server=name) == 0.0
    assert series_of(text, name) <= ONLY_WHEN_DOWN
    down = [line for line in node.exporter.log().splitlines() if '"server_down"' in line and f'"{name}"' in line]
    assert down, f"no server_down line for {name}"
    assert any(reason in down[0] for reason in DOWN_REASONS[name].split("|")), down[0]


@pytest.mark.parametrize("name", UP_SERVERS)
def test_upstreams_that_answer_show_up_1(node: Node, name: str) -> None:
    assert sample_value(node.exporter.metrics(), "inference_server_up", server=name) == 1.0


def test_nonfinite_and_negative_counters_are_left_out_never_served(node: Node) -> None:
    text = node.exporter.metrics()
    odd = {"server": "nonfinite", "model": "odd"}
    for name in ("inference_generation_tokens_total", "inference_prompt_tokens_total"):
        assert sample_value(text, name, **odd) is None
    assert sample_value(text, "inference_requests_finished_total", **odd) is None
    assert sample_value(text, "inference_requests_running", **odd) == 3.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert math.isfinite(sample.value), sample


def test_metrics_answers_in_its_usual_time_while_upstreams_misbehave(node: Node) -> None:
    latencies = []
    for _ in range(60):
        start = time.perf_counter()
        assert node.exporter.get("/metrics")[0] == 200
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1, latencies
    assert latencies[-1] < 1.0, latencies


def test_the_good_server_keeps_its_true_rate(node: Node) -> None:
    labels = {"server": "good", "model": "steady-model"}
    wait_for(lambda: time.monotonic() - node.started > 12, 60, what="a full rate window")
    per_gpu = wait_for(
        lambda: sample_value(node.exporter.metrics(), "inference_generation_tokens_per_second_per_gpu", **labels),
        30,
        what="the good server's per-GPU rate",
    )
    assert per_gpu == pytest.approx(node.good.capacity * node.good.base / 4, rel=0.03)


def test_a_flapping_upstream_alternates_and_never_gives_a_bad_rate(node: Node) -> None:
    seen: set[float] = set()
    rates: list[float] = []

    def both_states() -> bool:
        text = node.exporter.metrics()
        seen.add(sample_value(text, "inference_server_up", server="flap") or 0.0)
        rate = sample_value(text, "inference_generation_tokens_per_second", server="flap", model="flap")
        if rate is not None:
            rates.append(rate)
        return seen == {0.0, 1.0}

    wait_for(both_states, 60, interval=0.2, what="the flapping server both up and down")
    assert all(math.isfinite(r) and r >= 0 for r in rates), rates
    assert node.exporter.process.poll() is None


def restart_rates(node: Node, seconds: float) -> list[float]:
    rates, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        rate = sample_value(
            node.exporter.metrics(), "inference_generation_tokens_per_second", server="restart", model="restart"
        )
        if rate is not None:
            rates.append(rate)
        time.sleep(0.2)
    return rates


def test_a_restarting_upstream_counts_from_zero_without_a_negative_rate(node: Node) -> None:
    def up() -> float | None:
        return sample_value(node.exporter.metrics(), "inference_server_up", server="restart")

    wait_for(lambda: up() == 1.0, 30, what="the restarting server up")
    before = restart_rates(node, 3)
    node.loop.run(node.restart_runner.cleanup())  # the process goes away
    wait_for(lambda: up() == 0.0, 30, what="the restarting server down")
    node.restartable.restart()
    node.restart_runner = node.loop.run(listen(app_with(node.restartable.handle), node.restart_port))  # type: ignore[assignment]
    node.loop._runners.append(node.restart_runner)
    wait_for(lambda: up() == 1.0, 30, what="the restarted server up")
    after = restart_rates(node, 4)
    true_rate = node.restartable.rate
    for rate in before + after:
        assert 0 <= rate <= true_rate * 1.1, (before, after)
    assert after, "no rate after the restart"


def test_a_flood_leaves_the_exporter_memory_bounded(node: Node) -> None:
    rss_kib = next(
        int(line.split()[1])
        for line in Path(f"/proc/{node.exporter.process.pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    assert rss_kib < 250 * 1024, f"{rss_kib} KiB resident after 100 MB bodies"
