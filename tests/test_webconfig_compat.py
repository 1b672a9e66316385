"""The web config loader against exporter-toolkit itself (``promtool check web-config`` agrees on what
is valid) and against anything at all (hypothesis: no exception but ``ConfigError`` escapes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import ConfigError
from exporter.serve.security.tls import server_context
from exporter.serve.security.toolkit import GO_CIPHER_SUITES, TLS_VERSIONS
from exporter.serve.security.webconfig import load_web_config, web_config_from_data, web_config_from_text
from tests.certs import CertificateAuthority
from tests.conftest import require_tool
from tests.test_webconfig import HEADERS_SAMPLE, PROMETHEUS_GUIDE_HASH, write


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
def certs(tmp_path: Path, ca: CertificateAuthority) -> Path:
    """A directory with server.crt, server.key and ca.crt."""
    ca.server("localhost").write(tmp_path, "server")
    ca.write(tmp_path)
    return tmp_path


# -- compatibility with promtool check web-config (exporter-toolkit's own validation) ---------------

AGREEMENT = {
    "tls": ("tls_server_config: {cert_file: server.crt, key_file: server.key}", True),
    "mtls": (
        "tls_server_config: {cert_file: server.crt, key_file: server.key,"
        " client_auth_type: RequireAndVerifyClientCert, client_ca_file: ca.crt}",
        True,
    ),
    "basic auth": (f"basic_auth_users: {{admin: '{PROMETHEUS_GUIDE_HASH}'}}", True),
    "headers": (HEADERS_SAMPLE, True),
    "empty": ("", True),
    "unknown key": ("tls_server_config: {cert_file: server.crt, key_file: server.key, colour: blue}", False),
    "bad client auth": (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth_type: Sometimes}",
        False,
    ),
    "ca without client auth": (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, client_ca_file: ca.crt}",
        False,
    ),
    "bad tls version": ("tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS9}", False),
    "missing key": ("tls_server_config: {cert_file: server.crt}", False),
    "missing file": ("tls_server_config: {cert_file: absent.crt, key_file: server.key}", False),
    "bad hash": ("basic_auth_users: {admin: plaintext}", False),
    "bad header value": ("http_server_config: {headers: {X-Content-Type-Options: sniff}}", False),
    "unsettable header": ("http_server_config: {headers: {Server: me}}", False),
    "unknown cipher": (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, cipher_suites: [TLS_NULL]}",
        False,
    ),
}


def ours_accept(path: Path) -> bool:
    try:
        config = load_web_config(path)
        if config.tls is not None:
            server_context(config.tls)
    except ConfigError:
        return False
    return True


@pytest.mark.prometheus
@pytest.mark.parametrize("case", sorted(AGREEMENT))
def test_promtool_and_the_loader_agree_on_what_is_valid(case: str, certs: Path) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    text, valid = AGREEMENT[case]
    path = write(certs, text)
    result = subprocess.run(
        [promtool, "check", "web-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode == 0) == valid, result.stdout + result.stderr
    assert ours_accept(path) == valid


# -- fuzzing ------------------------------------------------------------------------------------------

KEYS = [
    "tls_server_config",
    "http_server_config",
    "basic_auth_users",
    "rate_limit",
    "basic_auth_excluded_paths",
    "cert_file",
    "key_file",
    "cert",
    "key",
    "client_ca",
    "client_ca_file",
    "client_auth_type",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
    "headers",
    "http2",
    "interval",
    "burst",
    "X-Frame-Options",
    "alice",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "NoClientCert",
            "RequireAndVerifyClientCert",
            "TLS12",
            "TLS13",
            "1s",
            "0",
            "deny",
            PROMETHEUS_GUIDE_HASH,
            "/-/healthy",
            next(iter(GO_CIPHER_SUITES)),
            *TLS_VERSIONS,
        ]
    ),
)
YAMLISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()), children, max_size=5),
    ),
    max_leaves=25,
)


@given(YAMLISH)
def test_any_yaml_data_gives_a_web_config_or_a_config_error(data: object) -> None:
    try:
        config = web_config_from_data(data)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    if config.tls is not None:
        try:
            server_context(config.tls)
        except ConfigError as exc:
            assert exc.problems


@given(st.text(max_size=300))
def test_any_text_gives_a_web_config_or_a_config_error(text: str) -> None:
    try:
        web_config_from_text(text)
    except ConfigError as exc:
        assert exc.problems
