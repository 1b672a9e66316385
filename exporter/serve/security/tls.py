"""Build the endpoint's TLS context from ``tls_server_config``, and swap it under a live listener.

``server_context`` turns a ``TlsServerConfig`` into an ``ssl.SSLContext`` (certificate and key, client
CAs, client auth, versions, cipher suites), raising ``ConfigError`` with every problem.

``SwappableContext`` is what the listener holds: each new connection's handshake runs on the context
installed last, so a reloaded web config (a rotated certificate, a new client CA, another client auth
type) applies to new connections at once while open ones keep theirs, as exporter-toolkit's
``GetConfigForClient`` does.

Client auth types map onto OpenSSL's modes. ``RequestClientCert`` asks for no certificate: nothing
reads an unverified one, so the clients let in are the same. ``RequireAnyClientCert`` verifies the
certificate against the client CA (Python's ``ssl`` verifies every certificate it asks for).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from exporter.config import ConfigError
from exporter.serve.security.toolkit import GO_CIPHER_SUITES
from exporter.serve.security.webconfig import TlsServerConfig

_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_PATH = "tls_server_config"


def server_context(tls: TlsServerConfig, source: str = "web config") -> ssl.SSLContext:
    """A server-side context for ``tls``; raise ``ConfigError`` listing every problem."""
    problems: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    context.maximum_version = _VERSIONS[tls.max_version]
    _load_certificate(context, tls, problems)
    _load_client_cas(context, tls, problems)
    context.verify_mode = _VERIFY_MODES[tls.client_auth_type]
    _set_ciphers(context, tls, problems)
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if problems:
        raise ConfigError(problems, source)
    return context


def _load_certificate(context: ssl.SSLContext, tls: TlsServerConfig, problems: list[str]) -> None:
    with _pem_file(tls.cert_file, tls.cert) as cert, _pem_file(tls.key_file, tls.key) as key:
        if cert is None or key is None:
            return
        try:
            context.load_cert_chain(cert, key, password=_no_password)
        except (ssl.SSLError, OSError, TypeError) as exc:
            problems.append(f"{_PATH}: cannot use the certificate and key: {_ssl_reason(exc)}")


def _no_password() -> str:
    raise TypeError("the key is encrypted; exporter-toolkit web configs take unencrypted keys")


def _load_client_cas(context: ssl.SSLContext, tls: TlsServerConfig, problems: list[str]) -> None:
    if tls.client_auth_type in ("NoClientCert", "RequestClientCert"):
        return
    try:
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        elif tls.client_ca is not None:
            context.load_verify_locations(cadata=tls.client_ca)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    except (ssl.SSLError, OSError, ValueError) as exc:
        key = "client_ca_file" if tls.client_ca_file is not None else "client_ca"
        problems.append(f"{_PATH}.{key}: no usable CA certificate: {_ssl_reason(exc)}")


def _set_ciphers(context: ssl.SSLContext, tls: TlsServerConfig, problems: list[str]) -> None:
    names = [GO_CIPHER_SUITES[name] for name in tls.cipher_suites]
    openssl = [name for name in names if name is not None]
    if not openssl:
        return
    try:
        context.set_ciphers(":".join(openssl))
    except ssl.SSLError:
        problems.append(f"{_PATH}.cipher_suites: none of them is available in this OpenSSL")


@contextlib.contextmanager
def _pem_file(path: Path | None, inline: str | None) -> Iterator[str | None]:
    """The path of a PEM file: the configured one, or a private temporary copy of inline text."""
    if path is not None or inline is None:
        yield str(path) if path is not None else None
        return
    with tempfile.TemporaryDirectory(prefix="ite-tls-") as directory:
        target = Path(directory) / "pem"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(inline)
        yield str(target)


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason == "KEY_VALUES_MISMATCH":
        return "the key does not belong to the certificate"
    if isinstance(exc, TypeError):
        return str(exc)
    text = getattr(exc, "strerror", None) or str(exc)
    return str(reason).replace("_", " ").lower() if reason else text


class SwappableContext(ssl.SSLContext):
    """A server context that hands each new connection to the context installed last (``install``)."""

    _current: ssl.SSLContext

    def __new__(cls, initial: ssl.SSLContext) -> SwappableContext:
        context = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        context._current = initial
        return context

    def install(self, context: ssl.SSLContext) -> None:
        """Use ``context`` for connections from now on."""
        self._current = context

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """Wrap a connection's buffers with the current context (asyncio's TLS transport calls this)."""
        return self._current.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname, session=session
        )


def peer_names(peercert: Mapping[str, Any] | None) -> set[str]:
    """The subject alternative names of a verified peer certificate (DNS, IP, e-mail, URI), as Go prints them."""
    names: set[str] = set()
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind in ("DNS", "email", "URI"):
            names.add(str(value))
        elif kind == "IP Address":
            names.add(_ip_text(str(value)))
    return names


def _ip_text(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value.strip()
