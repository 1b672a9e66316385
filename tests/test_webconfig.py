"""The web config loader: exporter-toolkit's documented files load unchanged, every problem is reported
with its path and without a secret, and TLS contexts are built as the config says."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from exporter.config import ConfigError
from exporter.serve.security.tls import server_context
from exporter.serve.security.webconfig import go_duration, load_web_config, web_config_from_data
from tests.certs import CertificateAuthority

TOOLKIT_SAMPLE = """\
# TLS and basic authentication configuration example.
#
# Additionally, a certificate and a key file are needed.
tls_server_config:
  cert_file: server.crt
  key_file: server.key

# Usernames and passwords required to connect.
# Passwords are hashed with bcrypt: https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md#about-bcrypt.
basic_auth_users:
  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze
  bob: $2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m

# Exclude /-/healthy and /-/ready from basic authentication
basic_auth_excluded_paths:
- /-/healthy
- /-/ready
"""
"""exporter-toolkit's ``docs/web-config.yml`` (the sample node_exporter's README points to), verbatim."""
PROMETHEUS_GUIDE_HASH = "$2b$12$hNf2lSsxfm0.i4a.1kVpSOVyBCfIB51VRjgBUyv6kdnyTlgWj81Ay"
"""The hash of ``test`` from Prometheus' guide "Securing Prometheus API and UI endpoints using basic auth"."""
HEADERS_SAMPLE = """\
http_server_config:
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-XSS-Protection: 1
    Content-Security-Policy: "default-src 'self' *.test.example.net"
"""


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture
def certs(tmp_path: Path, ca: CertificateAuthority) -> Path:
    """A directory with server.crt, server.key and ca.crt."""
    ca.server("localhost").write(tmp_path, "server")
    ca.write(tmp_path)
    return tmp_path


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(text: str, directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_web_config(write(directory, text))
    return caught.value.problems


def test_the_documented_toolkit_sample_loads_unchanged(certs: Path) -> None:
    config = load_web_config(write(certs, TOOLKIT_SAMPLE))
    assert config.tls is not None
    assert config.tls.cert_file == certs / "server.crt"  # relative to the web config's directory
    assert config.tls.client_auth_type == "NoClientCert"
    assert set(config.basic_auth_users) == {"alice", "bob"}
    assert config.basic_auth_excluded_paths == ("/-/healthy", "/-/ready")
    assert isinstance(server_context(config.tls), ssl.SSLContext)


def test_the_documented_headers_sample_loads_unchanged(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, HEADERS_SAMPLE))
    assert config.tls is None
    assert config.headers["X-Frame-Options"] == "deny"
    assert config.headers["X-XSS-Protection"] == "1"
    assert len(config.headers) == 5


def test_an_empty_file_serves_plain_http_to_everyone(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config.tls is None and not config.basic_auth_users and not config.headers


def test_every_problem_is_reported_at_once_with_its_path(certs: Path) -> None:
    problems = problems_of(
        """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireSomething
  min_version: TLS14
  cipher_suites: [TLS_FANCY]
http_server_config:
  headers:
    X-Frame-Options: allow
    X-Powered-By: us
basic_auth_users:
  alice: not-a-hash
rate_limit: {interval: 1s, burst: 0}
listen: ":9842"
""",
        certs,
    )
    expected = [
        "tls_server_config.client_auth_type: must be one of",
        "tls_server_config.min_version: must be one of",
        "tls_server_config.cipher_suites: unknown cipher suite(s): TLS_FANCY",
        "http_server_config.headers.X-Frame-Options: must be one of: deny, sameorigin",
        "http_server_config.headers.X-Powered-By: cannot be configured",
        "basic_auth_users.alice: is not a bcrypt hash",
        "rate_limit.burst: must be at least 1",
        "listen: unknown key",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert len(problems) == len(expected)


def test_no_problem_quotes_a_password_hash_or_a_key(tmp_path: Path) -> None:
    secret_hash = "$2y$10$" + "x" * 52  # one character short: invalid, and must not be echoed
    inline_key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError) as bad_hash:
        web_config_from_data({"basic_auth_users": {"alice": secret_hash}})
    config = web_config_from_data({"tls_server_config": {"cert": "not a certificate", "key": inline_key}})
    assert config.tls is not None
    with pytest.raises(ConfigError) as bad_key:
        server_context(config.tls)
    assert secret_hash not in str(bad_hash.value)
    assert "c2VjcmV0" not in str(bad_key.value)


def test_a_certificate_needs_its_key(certs: Path) -> None:
    assert problems_of("tls_server_config: {cert_file: server.crt}", certs) == [
        "tls_server_config: missing one of key or key_file"
    ]


def test_a_missing_certificate_file_names_the_file(tmp_path: Path) -> None:
    (problem,) = problems_of("tls_server_config: {cert_file: nope.crt, key_file: nope.key}", tmp_path)[:1]
    assert problem.startswith("tls_server_config.cert_file: cannot read") and "nope.crt" in problem


def test_a_client_ca_without_a_client_auth_type_is_refused_as_exporter_toolkit_does(certs: Path) -> None:
    problems = problems_of(
        "tls_server_config: {cert_file: server.crt, key_file: server.key, client_ca_file: ca.crt}", certs
    )
    assert problems == ["tls_server_config.client_auth_type: a client CA is configured without a client auth type"]


def test_client_allowed_sans_need_a_client_auth_type_that_requires_a_certificate(certs: Path) -> None:
    problems = problems_of(
        """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: ca.crt
  client_allowed_sans: [scraper.example]
""",
        certs,
    )
    assert problems == [
        "tls_server_config.client_allowed_sans: requires client_auth_type RequireAnyClientCert or "
        "RequireAndVerifyClientCert"
    ]


def test_a_key_that_belongs_to_another_certificate_is_refused(certs: Path, ca: CertificateAuthority) -> None:
    ca.server("other").write(certs, "other")
    config = load_web_config(write(certs, "tls_server_config: {cert_file: server.crt, key_file: other.key}"))
    assert config.tls is not None
    with pytest.raises(ConfigError) as caught:
        server_context(config.tls)
    assert caught.value.problems == [
        "tls_server_config: cannot use the certificate and key: the key does not belong to the certificate"
    ]


def test_a_client_ca_file_without_certificates_is_refused(certs: Path) -> None:
    write(certs, "just text\n", "empty-ca.crt")
    config = load_web_config(
        write(
            certs,
            "tls_server_config: {cert_file: server.crt, key_file: server.key,"
            " client_auth_type: RequireAndVerifyClientCert, client_ca_file: empty-ca.crt}",
        )
    )
    assert config.tls is not None
    with pytest.raises(ConfigError) as caught:
        server_context(config.tls)
    assert caught.value.problems[0].startswith("tls_server_config.client_ca_file: no usable CA certificate")


def test_inline_certificate_and_key_work_like_files(tmp_path: Path, ca: CertificateAuthority) -> None:
    issued = ca.server("localhost")
    config = web_config_from_data({"tls_server_config": {"cert": issued.cert_pem, "key": issued.key_pem}})
    assert config.tls is not None and config.tls.files == ()
    context = server_context(config.tls)
    assert context.verify_mode == ssl.CERT_NONE
    assert list(tmp_path.iterdir()) == []  # nothing left behind


@pytest.mark.parametrize(
    ("client_auth", "mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("RequireClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_types_map_onto_openssl_modes(certs: Path, client_auth: str, mode: ssl.VerifyMode) -> None:
    ca_line = "" if client_auth in ("NoClientCert", "RequestClientCert") else ", client_ca_file: ca.crt"
    config = load_web_config(
        write(
            certs,
            f"tls_server_config: {{cert_file: server.crt, key_file: server.key, client_auth_type: {client_auth}"
            f"{ca_line}}}",
        )
    )
    assert config.tls is not None
    assert server_context(config.tls).verify_mode == mode


def test_go_cipher_suite_names_restrict_the_tls12_suites(certs: Path) -> None:
    config = load_web_config(
        write(
            certs,
            """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  min_version: TLS12
  max_version: TLS12
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519, CurveP256]
""",
        )
    )
    assert config.tls is not None
    context = server_context(config.tls)
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES256-GCM-SHA384"}
    assert context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert not context.options & ssl.OP_CIPHER_SERVER_PREFERENCE


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("250ms", 0.25), ("1m30s", 90.0), ("0", 0.0)])
def test_rate_limit_intervals_are_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


def test_a_rate_limit_interval_of_zero_disables_it() -> None:
    assert web_config_from_data({"rate_limit": {"interval": "0s", "burst": 0}}).rate_limit is None
