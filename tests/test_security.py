"""The endpoint's security end to end, the exporter as a real process: documented web configs work
unchanged (TLS, basic auth, mTLS), plain HTTP against TLS fails cleanly, certificates rotate without a
restart, a bad web config refuses to start, and upstream credentials never show."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web

from tests.certs import CertificateAuthority
from tests.fault_helpers import basic, client_context, vllm_body
from tests.helpers import EXPORTER, ExporterProcess, background_loop, get, run_exporter, wait_for
from tests.test_webconfig import PROMETHEUS_GUIDE_HASH, TOOLKIT_SAMPLE

pytestmark = pytest.mark.e2e

REFUSED = (urllib.error.URLError, ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def refused(call: object) -> bool:
    """Whether a request fails at the connection or TLS level (no HTTP status at all)."""
    try:
        call()  # type: ignore[operator]
    except REFUSED:
        return True
    return False


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("exporter test CA")


# -- the exporter-toolkit sample, verbatim: TLS and basic auth ---------------------------------------


@pytest.fixture(scope="module")
def toolkit(tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority) -> Iterator[ExporterProcess]:
    directory = tmp_path_factory.mktemp("toolkit")
    ca.server("localhost").write(directory, "server")
    ca_file = ca.write(directory)
    web = write(directory / "web-config.yml", TOOLKIT_SAMPLE)
    trust = client_context(ca_file)
    args = ["--gpu.simulate", "h100x8", "--web.config.file", str(web)]
    with run_exporter(args, directory, tls=True, context=trust, headers=basic("alice", "alice123")) as running:
        yield running


def test_the_toolkit_sample_lets_its_users_in_over_tls(toolkit: ExporterProcess) -> None:
    assert "inference_nvml_up 1" in toolkit.metrics()
    status, body, _ = toolkit.get("/metrics", headers=basic("bob", "bob123"))
    assert status == 200 and b"inference_gpu_up" in body


@pytest.mark.parametrize(
    "headers",
    [{}, basic("alice", "wrong"), basic("mallory", "alice123"), {"Authorization": "Bearer alice123"}],
    ids=["no credentials", "wrong password", "unknown user", "another scheme"],
)
def test_without_good_credentials_the_answer_is_401(toolkit: ExporterProcess, headers: dict[str, str]) -> None:
    status, _, response_headers = toolkit.get("/metrics", headers=headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == "Basic"


@pytest.mark.parametrize(("method_path", "status"), [("/", 401), ("/api/v1/status", 401), ("/-/healthy", 200)])
def test_every_route_but_the_excluded_ones_needs_credentials(
    toolkit: ExporterProcess, method_path: str, status: int
) -> None:
    assert toolkit.get(method_path, headers={})[0] == status


def test_plain_http_against_the_tls_listener_fails_cleanly(toolkit: ExporterProcess) -> None:
    plain = toolkit.base.replace("https://", "http://")
    assert refused(lambda: get(plain + "/metrics", headers=basic("alice", "alice123"), timeout=10))
    assert refused(lambda: get(toolkit.base + "/metrics", context=ssl.create_default_context(), timeout=10))
    assert toolkit.get("/metrics")[0] == 200  # still serving
    log = toolkit.log()
    assert "Traceback" not in log and '"level": "error"' not in log


def test_the_prometheus_guide_web_config_puts_health_behind_basic_auth_too(tmp_path: Path) -> None:
    web = write(tmp_path / "web.yml", f"basic_auth_users:\n    admin: {PROMETHEUS_GUIDE_HASH}\n")
    args = ["--gpu.simulate", "none", "--web.config.file", str(web)]
    with run_exporter(args, tmp_path, headers=basic("admin", "test")) as running:
        assert running.get("/-/healthy", headers={})[0] == 401
        assert running.get("/-/healthy")[0] == 200
        assert running.get("/metrics")[0] == 200


# -- mutual TLS ---------------------------------------------------------------------------------------


def mtls_config(directory: Path, ca: CertificateAuthority, sans: str = "") -> Path:
    ca.server("localhost").write(directory, "server")
    ca.write(directory)
    return write(
        directory / "web.yml",
        f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
{sans}""",
    )


def test_mtls_lets_in_only_clients_with_a_certificate_from_the_client_ca(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    web = mtls_config(tmp_path, ca)
    good = client_context(tmp_path / "ca.crt", ca.client("prometheus").write(tmp_path, "client"))
    stranger = client_context(tmp_path / "ca.crt", CertificateAuthority("other").client("x").write(tmp_path, "x"))
    no_cert = client_context(tmp_path / "ca.crt")
    with run_exporter(
        ["--gpu.simulate", "none", "--web.config.file", str(web)], tmp_path, tls=True, context=good
    ) as run:
        assert run.get("/metrics")[0] == 200
        assert refused(lambda: run.get("/metrics", context=no_cert))
        assert refused(lambda: run.get("/metrics", context=stranger))
        assert run.get("/metrics")[0] == 200
        assert "Traceback" not in run.log()


def test_client_allowed_sans_let_in_only_the_named_clients(tmp_path: Path, ca: CertificateAuthority) -> None:
    web = mtls_config(tmp_path, ca, "  client_allowed_sans: [scraper.example]\n")
    named = client_context(tmp_path / "ca.crt", ca.client("a", dns=("scraper.example",)).write(tmp_path, "a"))
    other = client_context(tmp_path / "ca.crt", ca.client("b", dns=("other.example",)).write(tmp_path, "b"))
    with run_exporter(
        ["--gpu.simulate", "none", "--web.config.file", str(web)], tmp_path, tls=True, context=named
    ) as run:
        assert run.get("/metrics")[0] == 200
        assert run.get("/metrics", context=other)[0] == 403


# -- reloading the web config -------------------------------------------------------------------------


def replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, as secret managers do."""
    temporary = path.with_suffix(".new")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def test_a_rotated_certificate_is_served_to_new_connections_without_a_restart(tmp_path: Path) -> None:
    old_ca, new_ca = CertificateAuthority("old CA"), CertificateAuthority("new CA")
    old_ca.server("localhost").write(tmp_path, "server")
    trust_old, trust_new = client_context(old_ca.write(tmp_path, "old")), client_context(new_ca.write(tmp_path, "new"))
    web = write(tmp_path / "web.yml", "tls_server_config: {cert_file: server.crt, key_file: server.key}\n")
    with run_exporter(
        ["--gpu.simulate", "none", "--web.config.file", str(web)], tmp_path, tls=True, context=trust_old
    ) as run:
        pid = run.process.pid
        assert refused(lambda: run.get("/metrics", context=trust_new))
        rotated = new_ca.server("localhost")
        replace(tmp_path / "server.key", rotated.key_pem)
        replace(tmp_path / "server.crt", rotated.cert_pem)
        wait_for(lambda: run.get("/metrics", context=trust_new)[0] == 200, 30, what="the new certificate")
        assert refused(lambda: run.get("/metrics", context=trust_old))
        assert run.process.pid == pid and run.process.poll() is None
        assert "web_config_reloaded" in run.log()


def test_a_broken_web_config_change_keeps_the_running_one_and_logs_every_problem(tmp_path: Path) -> None:
    web = write(tmp_path / "web.yml", f"basic_auth_users: {{admin: '{PROMETHEUS_GUIDE_HASH}'}}\n")
    with run_exporter(
        ["--gpu.simulate", "none", "--web.config.file", str(web)], tmp_path, headers=basic("admin", "test")
    ) as run:
        replace(web, "basic_auth_users: {admin: hunter2}\nhttp_server_config: {headers: {Server: x}}\n")
        wait_for(lambda: "web_config_reload_failed" in run.log(), 30, what="the failed reload in the log")
        failure = next(line for line in run.log().splitlines() if "web_config_reload_failed" in line)
        assert "basic_auth_users.admin" in failure and "http_server_config.headers.Server" in failure
        assert "hunter2" not in failure
        assert run.get("/metrics")[0] == 200  # the old users still apply
        assert run.get("/metrics", headers={})[0] == 401


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXPORTER, *args], capture_output=True, text=True, timeout=60, check=False)


def test_an_invalid_web_config_refuses_to_start_with_exit_2_and_every_problem(tmp_path: Path) -> None:
    web = write(
        tmp_path / "web.yml",
        "tls_server_config: {cert_file: missing.crt, key_file: missing.key, min_version: TLS9}\n"
        "basic_auth_users: {admin: plaintext-password}\n",
    )
    for extra in ([], ["--config.check"]):
        result = run_cli(
            "--gpu.simulate", "none", "--web.config.file", str(web), "--web.listen-address", "127.0.0.1:0", *extra
        )
        assert result.returncode == 2, result.stderr
        assert "4 problem(s)" in result.stderr and "Traceback" not in result.stderr
        for path in ("cert_file", "key_file", "min_version", "basic_auth_users.admin"):
            assert path in result.stderr
        assert "plaintext-password" not in result.stderr


def test_above_web_max_requests_credential_checks_are_refused_with_503(tmp_path: Path) -> None:
    slow_hash = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=13)).decode()  # about half a second a check
    web = write(
        tmp_path / "web.yml", f"basic_auth_users: {{admin: '{slow_hash}'}}\nbasic_auth_excluded_paths: [/-/ready]\n"
    )
    args = ["--gpu.simulate", "none", "--web.config.file", str(web), "--web.max-requests", "2"]
    with run_exporter(args, tmp_path) as run:
        barrier, statuses = threading.Barrier(10), []

        def attempt(i: int) -> None:
            barrier.wait()
            statuses.append(run.get("/metrics", headers=basic("admin", f"guess-{i}"), timeout=60)[0])

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert set(statuses) <= {401, 503} and len(statuses) == 10
    assert statuses.count(503) >= 1, statuses


# -- upstream credentials -------------------------------------------------------------------------------


SECRETS = ("tok-AAA-secret", "tok-ZZZ-secret", "key-BBB-secret", "pw-CCC-secret")


@pytest.fixture
def guarded_upstream() -> Iterator[str]:
    """An upstream that answers only with the bearer token and the API key; ``/basic`` wants another password."""

    async def metrics(request: web.Request) -> web.Response:
        token_ok = request.headers.get("Authorization") == f"Bearer {SECRETS[0]}"
        if not token_ok or request.headers.get("X-Api-Key") != SECRETS[2]:
            return web.Response(status=401, text="unauthorized\n")
        return web.Response(text=vllm_body(1000.0 * time.monotonic()))

    async def needs_basic(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != basic("user", "right-password")["Authorization"]:
            return web.Response(status=401, text="unauthorized\n")
        return web.Response(text=vllm_body(1.0))

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/basic", needs_basic)
    with background_loop() as loop:
        yield loop.serve(app)


def test_upstream_credentials_are_sent_rotated_and_never_shown(tmp_path: Path, guarded_upstream: str) -> None:
    token = write(tmp_path / "token", SECRETS[0] + "\n")
    host = guarded_upstream.removeprefix("http://")
    config = write(
        tmp_path / "config.yml",
        f"""
poll_interval: 1s
servers:
  - name: guarded
    url: {guarded_upstream}/metrics
    kind: vllm
    timeout: 500ms
    bearer_token_file: {token}
    headers: {{X-Api-Key: {SECRETS[2]}}}
  - {{name: userinfo, url: "http://user:{SECRETS[3]}@{host}/basic", kind: vllm, timeout: 500ms}}
""",
    )
    check = run_cli("--config.file", str(config), "--config.check")
    assert check.returncode == 0, check.stderr
    with run_exporter(["--config.file", str(config), "--gpu.simulate", "none"], tmp_path) as run:
        assert run.metrics().count('inference_server_up{server="guarded"} 1') == 1
        replace(token, SECRETS[1])
        wait_for(
            lambda: 'inference_server_up{server="guarded"} 0' in run.metrics(), 30, what="the rotated token refused"
        )
        replace(token, SECRETS[0])
        wait_for(lambda: 'inference_server_up{server="guarded"} 1' in run.metrics(), 30, what="the good token again")
        shown = [run.log(), run.metrics(), run.get("/api/v1/status")[1].decode(), check.stdout + check.stderr]
    assert "HTTP 401 from http://user:<secret>@" in shown[0]
    for text in shown:
        for secret in SECRETS:
            assert secret not in text


def test_a_config_problem_with_a_header_never_quotes_its_value(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yml",
        "servers:\n"
        f'  - {{name: a, url: "http://127.0.0.1:1/metrics", headers: {{X-Api-Key: "{SECRETS[2]}\\nX: y"}}}}\n',
    )
    result = run_cli("--config.file", str(config), "--config.check")
    assert result.returncode == 2
    assert "servers[0].headers: the value of X-Api-Key must be a one-line string" in result.stderr
    assert SECRETS[2] not in result.stderr
