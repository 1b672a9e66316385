"""The exporter process for the soak and load benchmarks, plain or behind an exporter-toolkit web config.

``Exporter`` starts ``python -m exporter --config.file ... --gpu.simulate h100x8`` on a free loopback
port and waits until it is ready; with ``secure=True`` it also writes a web config (TLS with a
throwaway CA, one basic auth user at bcrypt cost 10) and hands out the client's TLS context and
credentials. Certificates come from ``tests.certs`` and live in the benchmark's scratch directory.
"""

from __future__ import annotations

import ssl
import subprocess
import urllib.request
from pathlib import Path
from types import TracebackType

import aiohttp
import bcrypt

from bench.common import spawn, stop, wait_until
from bench.daemon import free_port
from tests.certs import CertificateAuthority

USER, PASSWORD = "prometheus", "bench-password"


class Exporter:
    """One exporter process; use as a context manager."""

    def __init__(self, config: Path, directory: Path, *, secure: bool = False, ready_timeout: float = 120.0) -> None:
        self.port = free_port()
        self.context: ssl.SSLContext | None = None
        self.headers: dict[str, str] = {}
        """The ``Authorization`` header when secure."""
        self.args = ["exporter", "--config.file", str(config), "--gpu.simulate", "h100x8"]
        self.args += ["--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "warn", "--log.format", "json"]
        if secure:
            self.args += ["--web.config.file", str(self._secure(directory))]
        self.base = f"{'https' if secure else 'http'}://127.0.0.1:{self.port}"
        self.log = directory / "exporter.log"
        self._ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def _secure(self, directory: Path) -> Path:
        ca = CertificateAuthority("bench CA")
        ca.server("localhost").write(directory, "server")
        self.context = ssl.create_default_context(cafile=str(ca.write(directory)))
        self.headers = {"Authorization": aiohttp.BasicAuth(USER, PASSWORD).encode()}
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
        web = directory / "web.yml"
        tls = "tls_server_config: {cert_file: server.crt, key_file: server.key}\n"
        web.write_text(tls + f"basic_auth_users: {{{USER}: '{hashed}'}}\n", encoding="utf-8")
        return web

    def __enter__(self) -> Exporter:
        self.process = spawn(self.args, log=self.log)
        wait_until(self._ready, self._ready_timeout, "the exporter to be ready")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            stop(self.process)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str, timeout: float = 10.0) -> str:
        """GET a path with the credentials; raise on anything but 200."""
        request = urllib.request.Request(self.base + path, headers=self.headers)
        with urllib.request.urlopen(request, timeout=timeout, context=self.context) as response:
            return str(response.read().decode("utf-8"))

    def _ready(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"the exporter exited; see {self.log}")
        try:
            self.get("/-/ready", timeout=2)
        except OSError:
            return False
        return True


def open_fds(pid: int) -> int:
    """How many file descriptors a process has open, from ``/proc/PID/fd``."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))
