"""The upstream access part of the configuration: per server, a bearer token file, headers and TLS.

``exporter.config.load`` reads these keys and reports their problems with the rest; this module holds
the converters that validate one value (``exporter.config.checks`` relates them to the rest).
Secrets stay out of every message: a problem names the key, never the token, header value or key.
File names must be absolute; the files must be readable when the configuration is loaded (the token
is read again on every change, the TLS files whenever they change).
"""

from __future__ import annotations

import os
import re
from typing import Any

from exporter.config.model import UpstreamTls

ACCESS_KEYS = {"bearer_token_file", "headers", "tls"}
TLS_KEYS = {"ca_file", "cert_file", "key_file", "insecure_skip_verify", "server_name"}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}


def readable_file(value: Any) -> str:
    """An absolute path to a file this process can read; raise ``ValueError`` otherwise."""
    if not isinstance(value, str) or not os.path.isabs(value):
        raise ValueError("must be an absolute path")
    try:
        with open(value, "rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
    return value


def header_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """``headers: {Name: value}`` as pairs; raise ``ValueError`` naming the header, never its value."""
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of header name to value")
    pairs: list[tuple[str, str]] = []
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in _RESERVED:
            raise ValueError(f"{name} is set by the HTTP client and cannot be configured")
        if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
            raise ValueError(f"the value of {name} must be a one-line string")
        pairs.append((name, text))
    return tuple(pairs)


def upstream_tls(value: Any) -> UpstreamTls:
    """``tls: {ca_file, cert_file, key_file, insecure_skip_verify, server_name}``; raise ``ValueError``."""
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of " + ", ".join(sorted(TLS_KEYS)))
    problems = [
        f"{key}: unknown key (expected one of: {', '.join(sorted(TLS_KEYS))})" for key in value if key not in TLS_KEYS
    ]
    files: dict[str, str | None] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        files[key] = None
        if value.get(key) is not None:
            try:
                files[key] = readable_file(value[key])
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
    if (value.get("cert_file") is None) != (value.get("key_file") is None):
        problems.append("cert_file and key_file go together")
    skip, name = value.get("insecure_skip_verify", False), value.get("server_name")
    if not isinstance(skip, bool):
        problems.append("insecure_skip_verify: must be true or false")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        problems.append("server_name: must be a non-empty string")
    if problems:
        raise ValueError("; ".join(problems))
    return UpstreamTls(**files, insecure_skip_verify=skip, server_name=name)


def max_connections(value: Any) -> int:
    """The most upstream connections open at once."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a whole number above zero")
    return value
