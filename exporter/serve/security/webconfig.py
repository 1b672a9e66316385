"""Read the Prometheus exporter-toolkit web configuration (``--web.config.file``) into frozen dataclasses.

The file is the one node_exporter, Prometheus and their kin read (exporter-toolkit's
``docs/web-configuration.md``): ``tls_server_config``, ``http_server_config``, ``basic_auth_users``
and ``rate_limit``, plus ``basic_auth_excluded_paths``, the name exporter-toolkit's proposals use for
paths served without credentials. Unknown keys are errors, as there. Every problem is reported at
once with its path (``tls_server_config.client_auth_type: must be one of ...``) in a ``ConfigError``;
no message ever quotes a key, a password hash or a header value.

Relative file names are resolved against the web config file's directory, as exporter-toolkit does.
Certificates are checked when the TLS context is built (``exporter.serve.security.tls``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.config import ConfigError
from exporter.config.read import Reader, flag, load_yaml, plain_text, read_text_file
from exporter.serve.security.toolkit import (
    CLIENT_AUTH_ALIASES,
    CLIENT_AUTH_TYPES,
    CURVES,
    GO_CIPHER_SUITES,
    HEADERS,
    TLS_KEYS,
    TLS_VERSIONS,
    TOP_KEYS,
)

_BCRYPT = re.compile(r"^\$2[abxy]?\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class TlsServerConfig:
    """How the endpoint serves TLS. Inline ``cert``/``key``/``client_ca`` stand in for the files."""

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    client_ca_file: Path | None = None
    client_ca: str | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] = ()
    """Subject alternative names of which a client certificate must carry one (empty: any)."""
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    """Go names of the TLS ≤ 1.2 suites allowed (empty: OpenSSL's defaults)."""
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()
    """Accepted and checked for compatibility; Python's ``ssl`` module keeps OpenSSL's default groups."""

    @property
    def files(self) -> tuple[Path, ...]:
        """The files the context is built from, watched for changes."""
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket in front of every request: one token per ``interval_seconds``, ``burst`` at most."""

    interval_seconds: float
    burst: int


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The whole web configuration; an empty file gives plain HTTP without credentials."""

    tls: TlsServerConfig | None = None
    """``None`` serves plain HTTP."""
    basic_auth_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    """User name → bcrypt hash; empty means no credentials are asked for."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Added to every response."""
    http2: bool = True
    """Accepted for compatibility; the endpoint speaks HTTP/1.1."""
    rate_limit: RateLimit | None = None
    basic_auth_excluded_paths: tuple[str, ...] = ()
    """Exact paths served without credentials (none by default, as in exporter-toolkit)."""

    @property
    def files(self) -> tuple[Path, ...]:
        """The files besides the web config itself that this configuration reads."""
        return self.tls.files if self.tls is not None else ()


class _Problems(Reader):
    """The configuration reader, where a key set to ``null`` reads as not set (as Go's YAML decoder has it)."""

    def read(self, data: Mapping[str, Any], path: str, key: str, default: Any, convert: Callable[[Any], Any]) -> Any:
        return default if data.get(key) is None else super().read(data, path, key, default, convert)


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check a web config file; raise ``ConfigError`` listing every problem."""
    source = str(path)
    return web_config_from_text(read_text_file(source, source), source, Path(path).parent)


def web_config_from_text(text: str, source: str = "web config", base_dir: Path | None = None) -> WebConfig:
    """Parse and check YAML text; relative file names are taken from ``base_dir``."""
    return web_config_from_data(load_yaml(text, source), source, base_dir)


def web_config_from_data(data: Any, source: str = "web config", base_dir: Path | None = None) -> WebConfig:
    """Build a ``WebConfig`` from parsed YAML, or raise ``ConfigError`` listing every problem."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(["the file must be a mapping (tls_server_config, basic_auth_users, ...)"], source)
    problems = _Problems()
    top = problems.mapping(data, "", TOP_KEYS)
    http = problems.mapping(top.get("http_server_config"), "http_server_config", {"http2", "headers"})
    config = WebConfig(
        tls=_tls(problems, top.get("tls_server_config"), base_dir),
        basic_auth_users=_users(problems, top.get("basic_auth_users")),
        headers=_headers(problems, http.get("headers")),
        http2=problems.read(http, "http_server_config", "http2", True, flag),
        rate_limit=_rate_limit(problems, top.get("rate_limit")),
        basic_auth_excluded_paths=problems.read(top, "", "basic_auth_excluded_paths", (), _paths),
    )
    if problems.problems:
        raise ConfigError(problems.problems, source)
    return config


# -- tls_server_config ----------------------------------------------------------------------------


def _tls(problems: _Problems, value: Any, base_dir: Path | None) -> TlsServerConfig | None:
    path = "tls_server_config"
    data = problems.mapping(value, path, TLS_KEYS)
    read = problems.read
    file = _file_reader(problems, path, base_dir)
    config = TlsServerConfig(
        cert_file=file(data, "cert_file"),
        key_file=file(data, "key_file"),
        cert=read(data, path, "cert", None, _optional_text),
        key=read(data, path, "key", None, _optional_text),
        client_ca_file=file(data, "client_ca_file"),
        client_ca=read(data, path, "client_ca", None, _optional_text),
        client_auth_type=read(data, path, "client_auth_type", "NoClientCert", _client_auth),
        client_allowed_sans=read(data, path, "client_allowed_sans", (), _strings),
        min_version=read(data, path, "min_version", "TLS12", _tls_version),
        max_version=read(data, path, "max_version", "TLS13", _tls_version),
        cipher_suites=read(data, path, "cipher_suites", (), _ciphers),
        prefer_server_cipher_suites=read(data, path, "prefer_server_cipher_suites", True, flag),
        curve_preferences=read(data, path, "curve_preferences", (), _curves),
    )
    enabled = any(data.get(k) for k in ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file"))
    if not enabled and not data.get("client_auth_type"):
        return None
    _check_tls(problems, config, data)
    return config


def _check_tls(problems: _Problems, tls: TlsServerConfig, data: Mapping[str, Any]) -> None:
    path = "tls_server_config"
    for inline, file in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if data.get(inline) and data.get(file):
            problems.fail(path, f"set either {inline} or {file}, not both")
    for inline, file in (("cert", "cert_file"), ("key", "key_file")):
        if not data.get(inline) and not data.get(file):
            problems.fail(path, f"missing one of {inline} or {file}")
    has_ca = tls.client_ca_file is not None or tls.client_ca is not None
    if has_ca and tls.client_auth_type == "NoClientCert":
        problems.fail(f"{path}.client_auth_type", "a client CA is configured without a client auth type")
    if tls.client_auth_type == "RequireAnyClientCert" and not has_ca:
        problems.fail(
            f"{path}.client_auth_type",
            "RequireAnyClientCert needs client_ca_file here: client certificates are always verified "
            "(use RequireAndVerifyClientCert)",
        )
    if tls.client_allowed_sans and tls.client_auth_type not in ("RequireAnyClientCert", "RequireAndVerifyClientCert"):
        problems.fail(
            f"{path}.client_allowed_sans",
            "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
        )
    if TLS_VERSIONS.index(tls.min_version) > TLS_VERSIONS.index(tls.max_version):
        problems.fail(f"{path}.min_version", "is above max_version")


def _file_reader(
    problems: _Problems, path: str, base_dir: Path | None
) -> Callable[[Mapping[str, Any], str], Path | None]:
    def file(data: Mapping[str, Any], key: str) -> Path | None:
        name = problems.read(data, path, key, None, plain_text)
        if not name:
            return None
        resolved = Path(name) if base_dir is None else base_dir / name
        try:
            with resolved.open("rb"):
                pass
        except OSError as exc:
            problems.fail(f"{path}.{key}", f"cannot read {resolved}: {_reason(exc)}")
        return resolved

    return file


def _client_auth(value: Any) -> str:
    text = CLIENT_AUTH_ALIASES.get(value, value) if isinstance(value, str) else None
    if text not in CLIENT_AUTH_TYPES:
        raise ValueError(f"must be one of: {', '.join(CLIENT_AUTH_TYPES)}")
    return str(text)


def _tls_version(value: Any) -> str:
    if value not in TLS_VERSIONS:
        raise ValueError(f"must be one of: {', '.join(TLS_VERSIONS)}")
    return str(value)


def _ciphers(value: Any) -> tuple[str, ...]:
    names = _strings(value)
    unknown = [name for name in names if name not in GO_CIPHER_SUITES]
    if unknown:
        raise ValueError(
            f"unknown cipher suite(s): {', '.join(unknown)} (Go names, such as {next(iter(GO_CIPHER_SUITES))})"
        )
    return names


def _curves(value: Any) -> tuple[str, ...]:
    names = _strings(value)
    unknown = [name for name in names if name not in CURVES]
    if unknown:
        raise ValueError(f"unknown curve(s): {', '.join(unknown)} (known: {', '.join(CURVES)})")
    return names


# -- users, headers, limits -----------------------------------------------------------------------


def _users(problems: _Problems, value: Any) -> dict[str, str]:
    data = problems.mapping(value, "basic_auth_users", None)
    users: dict[str, str] = {}
    for name, hashed in data.items():
        if not isinstance(name, str) or not name:
            problems.fail("basic_auth_users", "user names must be non-empty strings")
        elif not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            problems.fail(
                f"basic_auth_users.{name}",
                "is not a bcrypt hash (such as htpasswd -nBC 10 \"\" | tr -d ':\\n' prints)",
            )
        else:
            users[name] = hashed
    return users


def _headers(problems: _Problems, value: Any) -> dict[str, str]:
    data = problems.mapping(value, "http_server_config.headers", None)
    headers: dict[str, str] = {}
    for name, raw in data.items():
        path = f"http_server_config.headers.{name}"
        allowed = HEADERS.get(name) if isinstance(name, str) else None
        text = _scalar_text(raw)
        if allowed is None:
            problems.fail(path, f"cannot be configured (allowed: {', '.join(HEADERS)})")
        elif not isinstance(text, str) or any(c in text for c in "\r\n\0"):
            problems.fail(path, "must be a one-line string")
        elif allowed and text not in allowed:
            problems.fail(path, f"must be one of: {', '.join(allowed)}")
        elif text:
            headers[name] = text
    return headers


def _rate_limit(problems: _Problems, value: Any) -> RateLimit | None:
    data = problems.mapping(value, "rate_limit", {"interval", "burst"})
    interval = problems.read(data, "rate_limit", "interval", 0.0, go_duration)
    burst = problems.read(data, "rate_limit", "burst", 0, _non_negative_int)
    if interval <= 0:
        return None
    if burst < 1:
        problems.fail("rate_limit.burst", "must be at least 1 when an interval is set (0 would refuse every request)")
    return RateLimit(interval, burst)


def go_duration(value: Any) -> float:
    """Parse a Go duration (``1s``, ``250ms``, ``1m30s``, ``0``) into seconds; raise ``ValueError``."""
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return 0.0
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 1s or 250ms")
    if value == "0":
        return 0.0
    parts = _GO_DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError("must be a duration such as 1s or 250ms")
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


# -- scalars ----------------------------------------------------------------------------------------


def _scalar_text(value: Any) -> Any:
    """A YAML scalar as Go's YAML decoder turns it into a string (``1`` → ``"1"``); others unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _optional_text(value: Any) -> str | None:
    return plain_text(value) or None


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError("must be a list of non-empty strings")
    return tuple(value)


def _paths(value: Any) -> tuple[str, ...]:
    paths = _strings(value)
    if not all(path.startswith("/") for path in paths):
        raise ValueError("must be a list of paths, each starting with /")
    return paths


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
