"""Process faults: SIGTERM in the middle of a scrape, SIGTERM while upstreams hang, a storm of SIGHUPs
with a broken config, and a port already taken under TLS. The exporter runs as a real process.

(``tests/test_reload_e2e.py`` covers one SIGHUP with a valid and an invalid config, and
``tests/test_cli_e2e.py`` a port in use over plain HTTP.)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web

from exporter.demo.simulator import SimulatedVllm, simulated_app
from tests.certs import CertificateAuthority
from tests.fault_helpers import SilentServer, basic, vllm_body
from tests.helpers import EXPORTER, background_loop, run_exporter, sample_value, wait_for

pytestmark = pytest.mark.e2e


def test_sigterm_lets_an_in_flight_scrape_finish_then_exits_0(tmp_path: Path) -> None:
    slow = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=14)).decode()  # about a second to check
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users: {{admin: '{slow}'}}\nbasic_auth_excluded_paths: [/-/ready]\n", encoding="utf-8")
    args = ["--gpu.simulate", "h100x8", "--web.config.file", str(web), "--log.level", "debug"]
    with run_exporter(args, tmp_path) as run:
        result: dict[str, object] = {}

        def scrape() -> None:
            result["status"], result["body"], _ = run.get("/metrics", headers=basic("admin", "right"), timeout=60)

        scraper = threading.Thread(target=scrape)
        scraper.start()
        wait_for(lambda: '"credentials_checking"' in run.log(), 30, interval=0.01, what="the scrape in flight")
        run.signal(signal.SIGTERM)
        scraper.join(60)
        code = run.process.wait(60)
        log = run.log()
    assert result["status"] == 200
    assert b"inference_gpu_up" in result["body"]  # type: ignore[operator]
    assert code == 0
    assert log.index('"credentials_checking"') < log.index('"shutting_down"')
    assert "Traceback" not in log


def test_sigterm_while_upstreams_hang_exits_at_once(tmp_path: Path) -> None:
    silent = SilentServer()
    config = tmp_path / "config.yml"
    config.write_text(
        f"poll_interval: 10s\nrate_window: 60s\nservers:\n"
        f"  - {{name: hangs, url: 'http://127.0.0.1:{silent.port}/metrics', timeout: 9s}}\n",
        encoding="utf-8",
    )
    try:
        with run_exporter(
            ["--config.file", str(config), "--gpu.simulate", "none"], tmp_path, ready_path="/-/healthy"
        ) as run:
            wait_for(lambda: silent._held, 30, what="the exporter's poll hanging on the silent server")
            started = time.monotonic()
            run.signal(signal.SIGTERM)
            code = run.process.wait(30)
            took = time.monotonic() - started
    finally:
        silent.close()
    assert code == 0
    assert took < 5.0, f"took {took:.1f}s to stop while a 9 s poll hung"


def test_a_storm_of_sighups_with_a_broken_config_keeps_serving_the_old_one(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    with background_loop() as loop:
        url = loop.serve(simulated_app(SimulatedVllm(model="m", swing=0.0))) + "/metrics"
        good = f"poll_interval: 1s\nrate_window: 10s\nservers:\n  - {{name: s, url: '{url}', timeout: 500ms}}\n"
        config.write_text(good, encoding="utf-8")
        with run_exporter(["--config.file", str(config), "--gpu.simulate", "none"], tmp_path) as run:
            config.write_text("servers: [ {name: s, url: \n", encoding="utf-8")  # broken mid-edit
            for _ in range(20):
                run.signal(signal.SIGHUP)
                assert run.get("/metrics")[0] == 200
            wait_for(
                lambda: sample_value(run.metrics(), "inference_config_last_reload_successful") == 0.0,
                30,
                what="the failed reload",
            )
            text = run.metrics()
            assert sample_value(text, "inference_server_up", server="s") == 1.0
            config.write_text(good, encoding="utf-8")
            run.signal(signal.SIGHUP)
            wait_for(
                lambda: sample_value(run.metrics(), "inference_config_last_reload_successful") == 1.0,
                30,
                what="the good reload",
            )
            assert run.process.poll() is None
            log = run.log()
    assert "Traceback" not in log
    assert '"config_reload_failed"' in log


def test_a_port_already_in_use_under_tls_exits_1_with_a_clear_error(tmp_path: Path) -> None:
    CertificateAuthority().server("localhost").write(tmp_path, "server")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {cert_file: server.crt, key_file: server.key}\n", encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                *EXPORTER,
                "--gpu.simulate",
                "none",
                "--web.config.file",
                str(web),
                "--web.listen-address",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot_listen" in result.stderr and "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_upstream_that_renames_its_model_every_poll_never_grows_the_series(tmp_path: Path) -> None:
    hits = {"n": 0}

    async def shifting(_request: web.Request) -> web.Response:
        hits["n"] += 1
        return web.Response(text=vllm_body(1000.0 * hits["n"], model=f"model-{hits['n']}"))

    app = web.Application()
    app.router.add_get("/metrics", shifting)
    with background_loop() as loop:
        url = loop.serve(app) + "/metrics"
        config = tmp_path / "config.yml"
        config.write_text(
            f"poll_interval: 1s\nrate_window: 10s\nservers:\n  - {{name: shifty, url: '{url}', timeout: 500ms}}\n",
            encoding="utf-8",
        )
        with run_exporter(["--config.file", str(config), "--gpu.simulate", "none"], tmp_path) as run:
            wait_for(lambda: hits["n"] >= 5, 30, what="five polls")
            text = run.metrics()
    models = [line for line in text.splitlines() if line.startswith("inference_generation_tokens_total{")]
    assert len(models) == 1, models  # only the current model is served; the old ones are gone
