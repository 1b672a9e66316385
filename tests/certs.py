"""Throwaway certificates for TLS tests: a CA, server and client certificates, all made at test time.

Nothing here is committed as a file: each test writes what it needs under its ``tmp_path``. Keys
are small ECDSA P-256 keys that live for one test run.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its key, as PEM text."""

    cert_pem: str
    key_pem: str

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``NAME.crt`` and ``NAME.key`` into ``directory``; return their paths."""
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_text(self.cert_pem, encoding="utf-8")
        key_path.write_text(self.key_pem, encoding="utf-8")
        key_path.chmod(0o600)
        return cert_path, key_path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    return Issued(
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


class CertificateAuthority:
    """A CA that issues server and client certificates."""

    def __init__(self, name: str = "test CA") -> None:
        self._key = _key()
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(name, self.name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        """The CA certificate."""

    def write(self, directory: Path, name: str = "ca") -> Path:
        """Write the CA certificate as ``NAME.crt``."""
        path = directory / f"{name}.crt"
        path.write_text(self.pem, encoding="utf-8")
        return path

    def server(self, *names: str, ips: tuple[str, ...] = ("127.0.0.1",)) -> Issued:
        """A server certificate for DNS ``names`` and ``ips``."""
        return self._issue(names[0] if names else ips[0], names, ips, ExtendedKeyUsageOID.SERVER_AUTH)

    def client(self, name: str, *, dns: tuple[str, ...] = (), uris: tuple[str, ...] = ()) -> Issued:
        """A client certificate for ``name``, with optional DNS and URI subject alternative names."""
        return self._issue(name, dns, (), ExtendedKeyUsageOID.CLIENT_AUTH, uris)

    def _issue(
        self,
        common_name: str,
        dns: tuple[str, ...],
        ips: tuple[str, ...],
        usage: x509.ObjectIdentifier,
        uris: tuple[str, ...] = (),
    ) -> Issued:
        key = _key()
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        builder = _builder(common_name, self.name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return _pem(builder.sign(self._key, hashes.SHA256()), key)
