"""How one poll reaches an upstream: its bearer token, extra headers and TLS context, kept current.

The token file is looked at (one ``stat``) on every poll and read again when its modification time,
size or inode change, so a rotated token (a Kubernetes secret swap included) applies at the next
poll. The TLS context is rebuilt the same way when its CA, certificate or key file changes. A file
that cannot be read becomes an ``AccessError`` (that server shows ``up 0``); its content never
appears in a message.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from exporter.config import ServerConfig
from exporter.config.model import UpstreamTls

T = TypeVar("T")
Stamp = tuple[int, int, int, int]


class AccessError(Exception):
    """A credential or TLS file of a server cannot be used; the message names the file, not its content."""


@dataclass
class _Watched(Generic[T]):
    """A value built from files, rebuilt when any of them changes."""

    files: tuple[str, ...]
    build: Callable[[], T]
    _stamps: tuple[Stamp, ...] | None = None
    _value: T | None = field(default=None, repr=False)

    def get(self) -> T:
        stamps = tuple(_stat(path) for path in self.files)
        if self._value is None or stamps != self._stamps:
            self._value = self.build()
            self._stamps = stamps
        return self._value


class UpstreamAccess:
    """The request options of one server: headers (with the bearer token) and, for https, TLS."""

    def __init__(self, server: ServerConfig) -> None:
        self._server = server
        token_file = server.bearer_token_file
        self._token = _Watched((token_file,), lambda: _read_token(token_file)) if token_file else None
        tls = server.tls
        self._tls = _Watched(tls.files, lambda: client_context(tls)) if tls is not None else None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``ClientSession.get``; raise ``AccessError``."""
        headers = dict(self._server.headers)
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get()}"
        options: dict[str, Any] = {"headers": headers} if headers else {}
        if self._tls is not None:
            options["ssl"] = self._tls.get()
            if self._server.tls is not None and self._server.tls.server_name:
                options["server_hostname"] = self._server.tls.server_name
        return options


def client_context(tls: UpstreamTls) -> ssl.SSLContext:
    """A client context that trusts ``ca_file`` (or the system), presents ``cert_file`` if set."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise AccessError(f"cannot use the TLS files ({', '.join(tls.files)}): {_reason(exc)}") from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessError(f"cannot read bearer_token_file {path}: {_reason(exc)}") from None
    if not token or any(c in token for c in "\r\n\0"):
        raise AccessError(f"bearer_token_file {path} is empty or spans several lines")
    return token


def _stat(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else (getattr(exc, "strerror", None) or type(exc).__name__)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``<secret>``, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=f"{user}:<secret>@{hostport}" if colon else parts.netloc))
