"""`inspect` on files, stdin and URLs (as a real process), and its one-line refusals of bad input."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from exporter.inspector import MAX_BYTES, run_inspect
from tests.conftest import FIXTURES, fixture_text
from tests.helpers import listen
from tests.test_servers_fixtures import EXPECTED, KINDS

INSPECT = [sys.executable, "-m", "exporter", "inspect"]
TGI = FIXTURES / "servers" / "tgi-3.x.prom"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*INSPECT, *args], input=stdin, capture_output=True, timeout=120, check=False)


def test_a_file_prints_the_normalized_values_as_json() -> None:
    result = run(str(FIXTURES / "servers" / "sglang-0.5.23-reconstructed.prom"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"kind": "sglang", "models": EXPECTED["sglang-0.5.23-reconstructed.prom"]}
    assert result.stderr == b""


def test_stdin_is_read_with_a_dash_and_kind_can_be_forced() -> None:
    result = run("-", "--kind", "tgi", stdin=TGI.read_bytes())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"kind": "tgi", "models": EXPECTED["tgi-3.x.prom"]}


@pytest.mark.asyncio
async def test_a_url_is_polled_like_a_configured_server_with_its_side_endpoints() -> None:
    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=TGI.read_text(encoding="utf-8"))

    async def info(_request: web.Request) -> web.Response:
        return web.json_response({"model_id": "org/model", "version": "3.3.5"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/info", info)
    runner = await listen(app)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        process = await asyncio.create_subprocess_exec(
            *INSPECT, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await runner.cleanup()
    assert process.returncode == 0, stderr
    assert json.loads(stdout) == {"kind": "tgi", "models": {"org/model": EXPECTED["tgi-3.x.prom"][""]}}


def test_a_bad_body_exits_non_zero_with_one_line_on_stderr_as_a_real_process() -> None:
    result = run("-", stdin=b"<html>404</html>\n")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        "inspect: no adapter recognizes this body (is it an inference server's /metrics?)"
    ]


@pytest.mark.parametrize(
    ("source", "kind", "reason"),
    [
        ("/nonexistent/metrics.prom", "auto", "cannot read /nonexistent/metrics.prom: No such file or directory"),
        (str(TGI), "sglang", "no sglang metrics found"),
        (str(TGI), "ollama", "unknown --kind 'ollama' (known: auto, "),
        ("https://127.0.0.1:1/metrics", "vllm", "cannot fetch https://127.0.0.1:1/metrics"),
    ],
)
def test_bad_sources_exit_1_with_a_one_line_reason(
    capsys: pytest.CaptureFixture[str], source: str, kind: str, reason: str
) -> None:
    assert run_inspect(source, kind=kind, timeout=10.0) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("inspect: ") and reason in err and err.count("\n") == 1


def test_a_url_nobody_listens_on_is_refused_with_the_connection_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as held:  # bound but not listening: connections are refused while the test runs
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/metrics"
        assert run_inspect(url, timeout=10.0) == 1
    assert capsys.readouterr().err.startswith(f"inspect: cannot fetch {url}: ")


def test_a_file_larger_than_the_cap_is_refused_without_reading_it_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.prom"
    with big.open("wb") as file:
        file.truncate(100 * 1024 * 1024)  # sparse: 100 MiB that cost no disk
    assert run_inspect(str(big)) == 1
    assert f"is larger than {MAX_BYTES} bytes" in capsys.readouterr().err


def test_a_file_that_is_not_utf8_is_refused_with_the_byte_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.prom"
    bad.write_bytes(b"vllm:x 1\n\xc3\x28")
    assert run_inspect(str(bad)) == 1
    assert "is not UTF-8 text (byte 9)" in capsys.readouterr().err


def test_a_malformed_line_is_refused_with_the_line_quoted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.prom"
    cut.write_text(fixture_text("servers", "vllm-0.33.0-reconstructed.prom") + "vllm:num_requests_running{model_na")
    assert run_inspect(str(cut)) == 1
    assert "malformed or cut-short sample line: 'vllm:num_requests_running{model_na'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_inspects_to_its_expected_values(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_inspect(str(FIXTURES / "servers" / name)) == 0
    assert json.loads(capsys.readouterr().out) == {"kind": KINDS[name], "models": EXPECTED[name]}


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("trtllm-serve-json-metrics-docs.json", "/prometheus/metrics"),
        ("vllm-production-stack-router-reconstructed.prom", "http://10.0.0.11:8000/metrics"),
        ("mindie-motor-coordinator-docs.prom", "Huawei MindIE"),
    ],
)
def test_a_refused_file_exits_1_with_its_reason(name: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_inspect(str(FIXTURES / "servers" / "refused" / name)) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("inspect: ") and words in err and err.count("\n") == 1


@pytest.mark.asyncio
async def test_a_url_that_serves_trtllm_serve_json_says_where_the_prometheus_text_is() -> None:
    body = fixture_text("servers", "refused", "trtllm-serve-json-metrics-reconstructed.json")

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = await listen(app)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        process = await asyncio.create_subprocess_exec(
            *INSPECT, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await runner.cleanup()
    assert (process.returncode, stdout) == (1, b"")
    (line,) = stderr.decode().splitlines()
    assert line.startswith("inspect: ") and "point the exporter at /prometheus/metrics on the same port" in line
