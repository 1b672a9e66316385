"""The exporter as users run it: its command line in a process of its own, against simulated servers.

``write_config`` writes a configuration for the given server URLs. ``Daemon`` starts
``python -m exporter --config.file ... --gpu.simulate h100x8`` on a free loopback port (optionally
pinned to one CPU), waits until it is ready, and reads its metrics. With ``secure`` it serves behind
an exporter-toolkit web config (TLS with a throwaway CA from ``tests.certs``, one basic auth user at
bcrypt cost 10) and hands out the client's TLS context and credentials; ``module`` runs another
program with the same flags instead (``bench.baseline``: the same polling, served by
``prometheus_client``). ``Upstreams`` runs ``bench.upstream`` in processes of its own (a swarm of
``processes``, the servers split between them, optionally at a lower priority) and hands out their
URLs.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import ssl
import subprocess
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import aiohttp
import bcrypt

from bench.common import running, spawn
from tests.certs import CertificateAuthority
from tests.helpers import free_port, stop_process, wait_for

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "Accept-Encoding": "gzip",
}
USER, PASSWORD = "prometheus", "bench-password"
NICE = 10
"""The simulated servers' priority beside a load generator: below it."""


def write_config(
    path: Path,
    urls: list[str],
    *,
    poll_interval: str = "1s",
    rate_window: str | None = None,
    timeout: str = "800ms",
    kind: str = "auto",
) -> None:
    """A configuration file with one server per URL, each on one of 8 GPUs."""
    lines = [f"poll_interval: {poll_interval}"]
    if rate_window is not None:
        lines.append(f"rate_window: {rate_window}")
    lines += ["pricing:", "  gpu_hourly_cost: {default: 2.5}", "servers:"]
    for i, url in enumerate(urls):
        lines += [f"  - name: server-{i:04d}", f"    url: {url}", f"    gpus: [{i % 8}]", f"    timeout: {timeout}"]
        lines += [f"    kind: {kind}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Daemon:
    """One exporter process; use as a context manager.

    ``secure``: a folder for a web config, certificates and keys; the exporter then serves over TLS
    with basic auth, and ``context`` and ``headers`` are what a client needs.
    """

    def __init__(
        self,
        config: Path,
        *,
        cpu: int | None = None,
        log: Path | None = None,
        secure: Path | None = None,
        ready_timeout: float = 120.0,
        module: Sequence[str] = ("exporter",),
    ) -> None:
        self.port = free_port()
        self.context: ssl.SSLContext | None = None
        self.headers: dict[str, str] = {}
        """The ``Authorization`` header when secure."""
        self._args = [*module, "--config.file", str(config), "--gpu.simulate", "h100x8"]
        self._args += ["--web.listen-address", f"127.0.0.1:{self.port}", "--log.level", "warn", "--log.format", "json"]
        if secure is not None:
            self._args += ["--web.config.file", str(self._secure(secure))]
        self.base = f"{'https' if secure is not None else 'http'}://127.0.0.1:{self.port}"
        self._cpu, self._log, self._ready_timeout = cpu, log, ready_timeout
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

    def __enter__(self) -> Daemon:
        self.process = spawn(self._args, cpu=self._cpu, log=self._log)
        wait_for(self._ready, self._ready_timeout, what="the exporter to be ready")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            stop_process(self.process)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the exporter exited with code {self.process.returncode} (log: {self._log})")
        try:
            self.get("/-/ready", timeout=2)
        except OSError:
            return False
        return True

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

    def metrics(self) -> str:
        """The metrics as plain text."""
        return self.get("/metrics")

    def scrape_like_prometheus(self) -> int:
        """One scrape with Prometheus's headers (OpenMetrics, gzip); return the body's size."""
        return len(self._prometheus_scrape(10.0))

    def metrics_like_prometheus(self, timeout: float = 30.0) -> str:
        """The metrics as Prometheus asks for them (OpenMetrics, gzip), decompressed."""
        return gzip.decompress(self._prometheus_scrape(timeout)).decode("utf-8")

    def _prometheus_scrape(self, timeout: float) -> bytes:
        request = urllib.request.Request(self.base + "/metrics", headers={**PROMETHEUS_HEADERS, **self.headers})
        with urllib.request.urlopen(request, timeout=timeout, context=self.context) as response:
            return bytes(response.read())


class Upstreams:
    """``count`` simulated vLLM servers, served by ``processes`` ``bench.upstream`` processes; a context manager."""

    def __init__(
        self,
        count: int,
        *,
        cpu: int | None = None,
        rate: float = 2000.0,
        engines: int = 2,
        processes: int = 1,
        nice: int = 0,
    ) -> None:
        shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        firsts = [sum(shares[:i]) for i in range(processes)]
        self._args = [
            ["bench.upstream", "--servers", str(n), "--rate", str(rate), "--engines", str(engines), "--first", str(k)]
            for n, k in zip(shares, firsts, strict=True)
            if n
        ]
        self._cpu = cpu
        self.urls: list[str] = []
        self._stack = contextlib.ExitStack()
        self.nice = nice
        """Lower priority (``NICE``) where a load generator shares their CPU and must not wait for them."""

    def __enter__(self) -> Upstreams:
        try:
            processes = [
                self._stack.enter_context(running(args, cpu=self._cpu, capture=True, nice=self.nice))
                for args in self._args
            ]
            for process in processes:
                assert process.stdout is not None
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError("bench.upstream exited before serving")
                self.urls += json.loads(line)["urls"]
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory for configurations and logs."""
    return tempfile.TemporaryDirectory(prefix="ite-bench-")
