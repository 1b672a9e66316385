"""The exporter as users run it: its command line in a process of its own, against simulated servers.

``Daemon`` writes a configuration for the given server URLs, starts
``python -m exporter --config.file ... --gpu.simulate h100x8`` on a loopback port (optionally pinned
to one CPU), waits until it is ready, and reads its metrics. ``Upstreams`` runs ``bench.upstream`` in
a process of its own and hands out its URLs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType

from bench.common import http_get, running, sample, spawn, stop, wait_until

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "Accept-Encoding": "gzip",
}


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    """One exporter process; use as a context manager."""

    def __init__(self, config: Path, *, cpu: int | None = None, log: Path | None = None, ready_timeout: float = 120):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._args = [
            "exporter",
            "--config.file",
            str(config),
            "--gpu.simulate",
            "h100x8",
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            "--log.level",
            "warn",
            "--log.format",
            "json",
        ]
        self._cpu, self._log, self._ready_timeout = cpu, log, ready_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        self.process = spawn(self._args, cpu=self._cpu, log=self._log)
        wait_until(self._ready, self._ready_timeout, "the exporter to be ready")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            stop(self.process)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the exporter exited with code {self.process.returncode}")
        try:
            http_get(self.base + "/-/ready", timeout=2)
        except OSError:
            return False
        return True

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def metrics(self) -> str:
        """The metrics as plain text."""
        return http_get(self.base + "/metrics", timeout=10)

    def scrape_like_prometheus(self) -> int:
        """One scrape with Prometheus's headers (OpenMetrics, gzip); return the body's size."""
        request = urllib.request.Request(self.base + "/metrics", headers=PROMETHEUS_HEADERS)
        with urllib.request.urlopen(request, timeout=10) as response:
            return len(response.read())

    def value(self, name: str, **labels: str) -> float | None:
        """One sample of the current metrics."""
        return sample(self.metrics(), name, **labels)


class Upstreams:
    """``bench.upstream`` in its own process: ``count`` simulated vLLM servers; use as a context manager."""

    def __init__(self, count: int, *, cpu: int | None = None, rate: float = 2000.0, engines: int = 2) -> None:
        self._args = ["bench.upstream", "--servers", str(count), "--rate", str(rate), "--engines", str(engines)]
        self._cpu = cpu
        self.urls: list[str] = []
        self._context = running(self._args, cpu=cpu, capture=True)

    def __enter__(self) -> Upstreams:
        process = self._context.__enter__()
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("bench.upstream exited before serving")
        self.urls = list(json.loads(line)["urls"])
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._context.__exit__(exc_type, exc, tb)


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory for configurations and logs."""
    return tempfile.TemporaryDirectory(prefix="ite-bench-")
